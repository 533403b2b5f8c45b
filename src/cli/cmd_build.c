/*
 * cmd_build.c - `isoflow build`: compiles a stage written against
 * isoflow/stage.h, with the SDK runtime, to a WebAssembly module (clang-19,
 * freestanding wasm32) or with --native to a shared object (the host C
 * compiler).  The flags match cmake/IsoflowStage.cmake; keep them in step.
 *
 *   isoflow build [-o OUT] [--native] [-I DIR]... [--sdk DIR] [--cc CC]
 *                 [-v] STAGE.c [MORE.c...]
 *
 * The SDK (include/isoflow/stage.h and src/stage_sdk.c) is looked for in:
 * --sdk DIR, $ISOFLOW_SDK, beside the executable (../sdk, ../../sdk,
 * ../share/isoflow/sdk) and the source tree it was built from
 * (ISOFLOW_SDK_DIR).  On failure the compiler's own messages are shown,
 * followed by "isoflow: compiler failed (exit N): <the command>"; exit 1.
 * Usage errors exit 2.
 */
#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

#define MAX_ARGS 64

void cli_cmd_build_help(FILE *out)
{
    fprintf(out,
            "usage: isoflow build [OPTIONS] STAGE.c [MORE.c...]\n\n"
            "Compiles a stage (C against isoflow/stage.h) with the SDK "
            "runtime to a\n"
            "WebAssembly module, or with --native to a shared object; the "
            "same source\n"
            "behaves identically both ways.\n\n"
            "options:\n"
            "  -o OUT       output file (default: STAGE.wasm, or STAGE.so "
            "with --native,\n"
            "               beside the first source)\n"
            "  --native     build a native .so (host compiler, -fPIC "
            "-shared); native\n"
            "               stages are not sandboxed\n"
            "  -I DIR       add an include directory (repeatable)\n"
            "  --sdk DIR    the SDK directory (holding include/isoflow/"
            "stage.h and\n"
            "               src/stage_sdk.c); default: $ISOFLOW_SDK, beside "
            "the\n"
            "               executable, or the source tree\n"
            "  --cc CC      the compiler (default: $ISOFLOW_WASM_CC or "
            "clang-19 for\n"
            "               wasm, $CC or cc for --native)\n"
            "  -v           print the compiler command before running it\n\n"
            "wasm: CC --target=wasm32 -std=c11 -O2 -mbulk-memory -nostdlib "
            "-Wl,--no-entry\n"
            "native: CC -std=c11 -O2 -fPIC -shared -fvisibility=hidden "
            "-ffp-contract=off\n"
            "example: isoflow build stages/clean.c -o clean.wasm\n");
}

/* 1 when DIR holds the SDK. */
static int is_sdk(const char *dir)
{
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof p, "%s/include/isoflow/stage.h", dir);
    if (stat(p, &st) != 0)
        return 0;
    snprintf(p, sizeof p, "%s/src/stage_sdk.c", dir);
    return stat(p, &st) == 0;
}

/* Finds the SDK (see the file comment) into out; 0 or -1. */
static int find_sdk(const char *given, char *out, size_t cap)
{
    if (given) {
        snprintf(out, cap, "%s", given);
        return is_sdk(out) ? 0 : -1;
    }
    const char *env = getenv("ISOFLOW_SDK");
    if (env && env[0]) {
        snprintf(out, cap, "%s", env);
        if (is_sdk(out))
            return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        static const char *const rel[] = {"../sdk", "../../sdk",
                                          "../share/isoflow/sdk"};
        for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
            int len = snprintf(out, cap, "%s/%s", exe, rel[i]);
            if (len > 0 && (size_t)len < cap && is_sdk(out))
                return 0;
        }
    }
#ifdef ISOFLOW_SDK_DIR
    snprintf(out, cap, "%s", ISOFLOW_SDK_DIR);
    if (is_sdk(out))
        return 0;
#endif
    return -1;
}

/* Runs argv, waits; returns its exit status (or -1 when it cannot run,
 * 128+N when killed by signal N). */
static int run(char **argv)
{
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
    if (rc != 0) {
        cli_errf("cannot run %s: %s", argv[0], strerror(rc));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

static void print_cmd(FILE *out, char **argv)
{
    for (size_t i = 0; argv[i]; i++)
        fprintf(out, "%s%s", i ? " " : "", argv[i]);
    fputc('\n', out);
}

int cli_cmd_build(int argc, char **argv)
{
    const char *out = NULL, *sdk_arg = NULL, *cc = NULL;
    const char *incs[16], *srcs[16];
    size_t nincs = 0, nsrcs = 0;
    int native = 0, verbose = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **val = NULL;
        if (cli_streq(a, "--help") || cli_streq(a, "-h")) {
            cli_cmd_build_help(stdout);
            return CLI_EXIT_OK;
        } else if (cli_streq(a, "--native")) {
            native = 1;
        } else if (cli_streq(a, "-v") || cli_streq(a, "--verbose")) {
            verbose = 1;
        } else if (cli_streq(a, "-o")) {
            val = &out;
        } else if (cli_streq(a, "--sdk")) {
            val = &sdk_arg;
        } else if (cli_streq(a, "--cc")) {
            val = &cc;
        } else if (strncmp(a, "-I", 2) == 0) {
            const char *d = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
            if (!d) {
                cli_errf("option '-I' needs a directory");
                return CLI_EXIT_USAGE;
            }
            if (nincs == sizeof incs / sizeof incs[0]) {
                cli_errf("too many -I options");
                return CLI_EXIT_USAGE;
            }
            incs[nincs++] = d;
        } else if (a[0] == '-' && a[1]) {
            cli_errf("unknown option '%s' (see 'isoflow build --help')", a);
            return CLI_EXIT_USAGE;
        } else {
            if (nsrcs == sizeof srcs / sizeof srcs[0]) {
                cli_errf("too many source files");
                return CLI_EXIT_USAGE;
            }
            srcs[nsrcs++] = a;
        }
        if (val) {
            if (i + 1 >= argc) {
                cli_errf("option '%s' needs a value", a);
                return CLI_EXIT_USAGE;
            }
            *val = argv[++i];
        }
    }
    if (nsrcs == 0) {
        cli_errf("no stage source given (see 'isoflow build --help')");
        return CLI_EXIT_USAGE;
    }

    char sdk[PATH_MAX];
    if (find_sdk(sdk_arg, sdk, sizeof sdk) != 0) {
        if (sdk_arg)
            cli_errf("%s is not the isoflow SDK (no include/isoflow/stage.h "
                     "and src/stage_sdk.c there)", sdk_arg);
        else
            cli_errf("cannot find the isoflow SDK; give it with --sdk DIR "
                     "or $ISOFLOW_SDK");
        return CLI_EXIT_USAGE;
    }

    char outbuf[PATH_MAX];
    if (!out) {
        const char *s = srcs[0];
        size_t n = strlen(s);
        if (n > 2 && strcmp(s + n - 2, ".c") == 0)
            n -= 2;
        snprintf(outbuf, sizeof outbuf, "%.*s%s", (int)n, s,
                 native ? ".so" : ".wasm");
        out = outbuf;
    }
    if (!cc) {
        const char *env = getenv(native ? "CC" : "ISOFLOW_WASM_CC");
        cc = env && env[0] ? env : (native ? "cc" : "clang-19");
    }

    char sdkinc[PATH_MAX + 16], sdksrc[PATH_MAX + 32];
    char incargs[16][PATH_MAX + 4];
    snprintf(sdkinc, sizeof sdkinc, "-I%s/include", sdk);
    snprintf(sdksrc, sizeof sdksrc, "%s/src/stage_sdk.c", sdk);

    char *args[MAX_ARGS];
    size_t n = 0;
#define ARG(s) (args[n++] = (char *)(s))
    ARG(cc);
    if (native) {
        ARG("-std=c11");
        ARG("-O2");
        ARG("-fPIC");
        ARG("-shared");
        ARG("-fvisibility=hidden");
        ARG("-ffp-contract=off");
        ARG("-fno-math-errno");
    } else {
        ARG("--target=wasm32");
        ARG("-std=c11");
        ARG("-O2");
        ARG("-mbulk-memory");
        ARG("-nostdlib");
        ARG("-Wl,--no-entry");
    }
    ARG("-Wall");
    ARG(sdkinc);
    for (size_t i = 0; i < nincs; i++) {
        snprintf(incargs[i], sizeof incargs[i], "-I%s", incs[i]);
        ARG(incargs[i]);
    }
    for (size_t i = 0; i < nsrcs; i++)
        ARG(srcs[i]);
    ARG(sdksrc);
    ARG("-o");
    ARG(out);
    args[n] = NULL;
#undef ARG

    if (verbose)
        print_cmd(stdout, args);
    fflush(stdout);
    int rc = run(args);
    if (rc != 0) {
        fprintf(stderr, "isoflow: compiler failed (exit %d): ", rc);
        print_cmd(stderr, args);
        return CLI_EXIT_FAIL;
    }
    printf("built %s\n", out);
    return CLI_EXIT_OK;
}
