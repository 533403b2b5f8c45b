/*
 * cmd_wasm.c - the `isoflow wasm` subcommands (validate, info, run), which
 * load, describe and execute WebAssembly modules through the public engine
 * API (wasm.h).
 *
 * Output formats (stable; tests/cli asserts on them):
 *
 *   isoflow wasm validate FILE...
 *     stdout "FILE: valid (N functions, M bytes)" per file, exit 0;
 *     N counts imported + defined functions.  On failure stderr
 *     "isoflow: FILE: <engine message>", exit 1 (I/O errors:
 *     "isoflow: cannot read FILE: <strerror>", exit 1).
 *
 *   isoflow wasm info FILE
 *     "key: value" lines, keys padded to 11 columns:
 *       "module:    FILE", "size:      M bytes", "types:     T",
 *       "functions: N (I imported, D defined)", "tables:    ...",
 *       "memory:    <mem> (defined|imported)" or "memory:    none",
 *       "globals:   G (...)", "data:      N segments",
 *       "elements:  N segments", "start:     none" or "func #K [\"name\"]",
 *     then "imports (K):" / "exports (K):" each followed by one line per
 *     entry, two spaces, the name (imports "module.name") padded to 24
 *     columns, a space, and the type:
 *       func (i32, i32) -> (i64)        "()" when empty on either side
 *       memory 1..2 pages               "memory 1.. pages" without max
 *       table funcref 10..20            "table funcref 10.." without max
 *       global mut i32 / global i32
 *     function entries end with "  [func #K]", or "  [func #K \"name\"]"
 *     when the name section gives it a name other than the import/export
 *     name; then "sections:" with one line per section, the label padded
 *     to 26 columns ("  type    ...    12 bytes"; custom sections are
 *     labelled "custom \"name\"").
 *     Non-printable bytes in names are shown as \xNN.
 *
 *   isoflow wasm run [OPTIONS] FILE.wasm [ARGS...]
 *     Without --invoke: runs the module's '_start' (a WASI command) with
 *     the guest argv [basename(FILE), ARGS...] and exits with the guest's
 *     exit code (proc_exit, or main's return through _start; 0 when
 *     _start returns).  With --invoke NAME: calls the export NAME with
 *     ARGS converted to its parameter types ('_initialize' first when the
 *     module exports it) and prints every result on its own line:
 *     i32/i64 signed decimal, f32 "%.9g", f64 "%.17g" (NaN "nan"/"-nan",
 *     infinities "inf"/"-inf"), references "null" or
 *     "funcref"/"externref"; exit 0.  wasi_snapshot_preview1 imports are
 *     linked in both modes (guest argv [basename(FILE)] with --invoke).
 *     ARGS: i32/i64 decimal or 0x hex, '-' allowed (unsigned spellings up to
 *     2^N-1 wrap); f32/f64 decimal, hex float, nan, inf, -inf; refs "null".
 *     The form "--invoke NAME ARGS... FILE.wasm" (ARGS before a FILE ending
 *     in .wasm) is accepted too.
 *     Options (each also as --opt=VALUE): --fuel N, --timeout MS,
 *     --max-memory SIZE (bytes, K/M/G suffixes in KiB/MiB/GiB, or Np
 *     pages), --dir HOST[:GUEST] (repeatable), --env K=V (repeatable),
 *     --invoke NAME, --time.
 *     Errors (stderr, "isoflow: " prefix):
 *       "option '--fuel' needs a whole number >= 0, got 'x'"         exit 2
 *       "option '--dir': cannot open directory 'd': <strerror>"      exit 2
 *       "NAME expects 1 argument (i32), got 2"                       exit 2
 *       "NAME: argument 1: 'x' is not a valid i32"                   exit 2
 *       "FILE: unresolved import env.foo"                            exit 1
 *       "FILE: no exported function 'NAME'"                          exit 1
 *       "FILE: no '_start' export; use --invoke NAME (exported
 *        functions: a, b)"                                           exit 1
 *       "trap: <message> in function <name|#index>"                  exit 3
 *       ("trap: <message>" when the engine does not know the function)
 *       "trap: timeout after N ms (interrupted) in function NAME"    exit 3
 *       "timeout after N ms: the guest is blocked in a host call"    exit 3
 *       "unknown option '--foo' (see 'isoflow wasm run --help')"     exit 2
 *     A guest exit (IW_EXIT) exits with the guest's code (modulo 256).
 *     --time adds on stderr:
 *       "time: load+instantiate X.XXX ms, call Y.YYY ms"
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../wasm/wasi.h"
#include "../wasm/wasm.h"
#include "cli.h"

/* ------------------------------------------------------------------------ */
/* Formatting helpers.                                                      */

/* A small bounded string builder: appends never overflow, and a
 * truncated result still ends in NUL. */
typedef struct sbuf {
    char *p;
    size_t cap, len;
} sbuf;

static void sb_add(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->cap == 0)
        return;
    if (b->len + n >= b->cap)
        n = b->cap - 1 - b->len;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_u32(sbuf *b, uint32_t v)
{
    char tmp[16];
    snprintf(tmp, sizeof tmp, "%" PRIu32, v);
    sb_add(b, tmp);
}

/* Appends the `len` bytes at `p` with bytes outside printable ASCII (and
 * the backslash) shown as \xNN, cut after `max` bytes with "...". */
static void sb_bytes(sbuf *b, const char *p, size_t len, size_t max)
{
    char tmp[8];
    size_t i;
    for (i = 0; i < len && i < max; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7F && c != '\\') {
            tmp[0] = (char)c;
            tmp[1] = '\0';
        } else {
            snprintf(tmp, sizeof tmp, "\\x%02x", c);
        }
        sb_add(b, tmp);
    }
    if (i < len)
        sb_add(b, "...");
}

/* sb_bytes for a NUL-terminated name. */
static void sb_name(sbuf *b, const char *name, size_t max)
{
    sb_bytes(b, name, strlen(name), max);
}

/* "(i32, i32)" */
static void sb_types(sbuf *b, const uint8_t *t, uint32_t n)
{
    sb_add(b, "(");
    for (uint32_t i = 0; i < n; i++) {
        if (i)
            sb_add(b, ", ");
        sb_add(b, iw_valtype_name(t[i]));
    }
    sb_add(b, ")");
}

static void sb_limits(sbuf *b, iw_limits l)
{
    sb_u32(b, l.min);
    sb_add(b, "..");
    if (l.has_max)
        sb_u32(b, l.max);
}

/* Writes the type part of an import/export ("func (i32) -> (i32)",
 * "memory 1..2 pages", "table funcref 10..", "global mut i32") into buf. */
static void fmt_desc_type(char *buf, size_t cap, const iw_extern_desc *d)
{
    sbuf b = {buf, cap, 0};
    if (cap)
        buf[0] = '\0';
    switch (d->kind) {
    case IW_EXTERN_FUNC:
        sb_add(&b, "func ");
        sb_types(&b, d->func.params, d->func.nparams);
        sb_add(&b, " -> ");
        sb_types(&b, d->func.results, d->func.nresults);
        break;
    case IW_EXTERN_TABLE:
        sb_add(&b, "table ");
        sb_add(&b, iw_valtype_name(d->elemtype));
        sb_add(&b, " ");
        sb_limits(&b, d->limits);
        break;
    case IW_EXTERN_MEMORY:
        sb_add(&b, "memory ");
        sb_limits(&b, d->limits);
        sb_add(&b, " pages");
        break;
    case IW_EXTERN_GLOBAL:
        sb_add(&b, d->mut ? "global mut " : "global ");
        sb_add(&b, iw_valtype_name(d->valtype));
        break;
    default:
        sb_add(&b, "?");
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* Loading.                                                                 */

/* Reads and loads `path`.  On success returns 0 with *bytes (caller frees)
 * and *mod (caller frees with iw_module_free); on failure prints the error
 * and returns -1 with nothing to free.  *load_ns gets the time spent in
 * iw_module_load. */
static int load_module(const char *path, uint8_t **bytes, size_t *len,
                       iw_module **mod, uint64_t *load_ns)
{
    char err[512];
    iw_status st;
    uint64_t t0;

    *mod = NULL;
    if (cli_read_file(path, CLI_MAX_FILE_BYTES, bytes, len) != 0)
        return -1;
    err[0] = '\0';
    t0 = cli_now_ns();
    st = iw_module_load(*bytes, *len, mod, err, sizeof err);
    if (load_ns)
        *load_ns = cli_now_ns() - t0;
    if (st != IW_OK) {
        cli_errf("%s: %s", path, err[0] ? err : iw_status_msg(st));
        free(*bytes);
        *bytes = NULL;
        *mod = NULL;
        return -1;
    }
    return 0;
}

/* Byte length of a desc's name: name_len, but never less than the C string
 * (robust against an engine that leaves name_len 0). */
static size_t desc_name_len(const iw_extern_desc *d)
{
    size_t n;
    if (!d->name)
        return 0;
    n = strlen(d->name);
    return d->name_len > n ? d->name_len : n;
}

/* Sections listed by `info` (the rest are counted). */
#define MAX_LISTED_SECTIONS 64

static const char *section_name(uint8_t id)
{
    static const char *const names[] = {
        "custom", "type",  "import",  "function", "table", "memory",   "global",
        "export", "start", "element", "code",     "data",  "datacount"};
    return id < sizeof names / sizeof names[0] ? names[id] : "unknown";
}

/* ------------------------------------------------------------------------ */
/* validate                                                                 */

static void help_validate(FILE *out)
{
    fprintf(out,
            "usage: isoflow wasm validate FILE...\n\n"
            "Decodes and validates each WebAssembly module and prints\n"
            "'FILE: valid (N functions, M bytes)'.  Exits 1 when any file\n"
            "is malformed, invalid or unreadable.\n\n"
            "example: isoflow wasm validate build/examples/wasm/fib.wasm\n");
}

static int cmd_validate(int argc, char **argv)
{
    int rc = CLI_EXIT_OK, nfiles = 0, opts_done = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_streq(argv[i], "--help") || cli_streq(argv[i], "-h")) {
            help_validate(stdout);
            return CLI_EXIT_OK;
        }
    }
    for (int i = 1; i < argc; i++) {
        uint8_t *bytes;
        size_t len;
        iw_module *m;
        const char *a = argv[i];
        if (!opts_done && cli_streq(a, "--")) {
            opts_done = 1;
            continue;
        }
        if (!opts_done && a[0] == '-' && a[1] != '\0') {
            cli_errf("unknown option '%s' (see 'isoflow wasm validate "
                     "--help')",
                     a);
            return CLI_EXIT_USAGE;
        }
        nfiles++;
        if (load_module(a, &bytes, &len, &m, NULL) != 0) {
            rc = CLI_EXIT_FAIL;
            continue;
        }
        printf("%s: valid (%" PRIu32 " functions, %zu bytes)\n", a,
               iw_module_func_count(m), len);
        iw_module_free(m);
        free(bytes);
    }
    if (nfiles == 0) {
        cli_errf("wasm validate needs a FILE (see 'isoflow wasm validate "
                 "--help')");
        return CLI_EXIT_USAGE;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* info                                                                     */

static void help_info(FILE *out)
{
    fprintf(out, "usage: isoflow wasm info FILE\n\n"
                 "Validates a WebAssembly module and lists its size, types,\n"
                 "functions, imports and exports with their types, memory,\n"
                 "start function and sections (function names come from the\n"
                 "name section when present).\n\n"
                 "example: isoflow wasm info build/examples/wasm/sieve.wasm\n");
}

/* Appends "func #K \"name\"" for function index idx; the name (from the
 * name section) only when it differs from `shown` (may be NULL). */
static void sb_funcref(sbuf *b, const iw_module *m, uint32_t idx,
                       const char *shown)
{
    const char *fname = iw_module_func_name(m, idx);
    sb_add(b, "func #");
    sb_u32(b, idx);
    if (fname && !(shown && cli_streq(fname, shown))) {
        sb_add(b, " \"");
        sb_name(b, fname, 64);
        sb_add(b, "\"");
    }
}

/* Prints one import or export line (see the format at the top). */
static void print_entry(const iw_module *m, const iw_extern_desc *d,
                        int has_idx, uint32_t idx)
{
    char name[640], type[1024], line[1800];
    sbuf nb = {name, sizeof name, 0};
    sbuf lb = {line, sizeof line, 0};
    name[0] = line[0] = '\0';
    if (d->module) {
        sb_name(&nb, d->module, 100);
        sb_add(&nb, ".");
    }
    if (d->name)
        sb_bytes(&nb, d->name, desc_name_len(d), 100);
    fmt_desc_type(type, sizeof type, d);
    sb_add(&lb, type);
    if (d->kind == IW_EXTERN_FUNC && has_idx) {
        sb_add(&lb, "  [");
        sb_funcref(&lb, m, idx, d->name);
        sb_add(&lb, "]");
    }
    printf("  %-24s %s\n", name, line);
}

static int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    uint8_t *bytes = NULL;
    size_t len = 0;
    iw_module *m = NULL;
    iw_module_counts w;
    uint32_t nimp, nexp, nsec;
    iw_extern_desc d;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_streq(a, "--help") || cli_streq(a, "-h")) {
            help_info(stdout);
            return CLI_EXIT_OK;
        }
        if (a[0] == '-' && a[1] != '\0') {
            cli_errf("unknown option '%s' (see 'isoflow wasm info --help')", a);
            return CLI_EXIT_USAGE;
        }
        if (path) {
            cli_errf("wasm info takes one FILE (see 'isoflow wasm info "
                     "--help')");
            return CLI_EXIT_USAGE;
        }
        path = a;
    }
    if (!path) {
        cli_errf("wasm info needs a FILE (see 'isoflow wasm info --help')");
        return CLI_EXIT_USAGE;
    }
    if (load_module(path, &bytes, &len, &m, NULL) != 0)
        return CLI_EXIT_FAIL;
    iw_module_counts_get(m, &w);
    nimp = iw_module_import_count(m);
    nexp = iw_module_export_count(m);

    printf("module:    %s\n", path);
    printf("size:      %zu bytes\n", len);
    printf("types:     %" PRIu32 "\n", w.types);
    printf("functions: %" PRIu32 " (%" PRIu32 " imported, %" PRIu32
           " defined)\n",
           w.funcs, w.imported_funcs, w.funcs - w.imported_funcs);
    printf("tables:    %" PRIu32 " (%" PRIu32 " imported, %" PRIu32
           " defined)\n",
           w.tables, w.imported_tables, w.tables - w.imported_tables);
    if (w.imported_memories) {
        for (uint32_t i = 0; i < nimp; i++) {
            if (iw_module_import(m, i, &d) == IW_OK &&
                d.kind == IW_EXTERN_MEMORY) {
                char type[256];
                fmt_desc_type(type, sizeof type, &d);
                printf("memory:    %s (imported)\n", type);
                break;
            }
        }
    } else if (w.memories) {
        char type[256];
        sbuf b = {type, sizeof type, 0};
        iw_limits mem0;
        type[0] = '\0';
        iw_module_memory_limits(m, 0, &mem0);
        sb_add(&b, "memory ");
        sb_limits(&b, mem0);
        sb_add(&b, " pages");
        printf("memory:    %s (defined)\n", type);
    } else {
        printf("memory:    none\n");
    }
    printf("globals:   %" PRIu32 " (%" PRIu32 " imported, %" PRIu32
           " defined)\n",
           w.globals, w.imported_globals, w.globals - w.imported_globals);
    printf("data:      %" PRIu32 " segments\n", w.datas);
    printf("elements:  %" PRIu32 " segments\n", w.elems);
    if (w.has_start) {
        char line[256];
        sbuf b = {line, sizeof line, 0};
        line[0] = '\0';
        sb_funcref(&b, m, w.start, NULL);
        printf("start:     %s\n", line);
    } else {
        printf("start:     none\n");
    }

    printf("imports (%" PRIu32 "):\n", nimp);
    {
        uint32_t fidx = 0;
        for (uint32_t i = 0; i < nimp; i++) {
            if (iw_module_import(m, i, &d) != IW_OK)
                continue;
            print_entry(m, &d, d.kind == IW_EXTERN_FUNC, fidx);
            if (d.kind == IW_EXTERN_FUNC)
                fidx++;
        }
    }
    printf("exports (%" PRIu32 "):\n", nexp);
    for (uint32_t i = 0; i < nexp; i++) {
        if (iw_module_export(m, i, &d) != IW_OK)
            continue;
        print_entry(m, &d, 1, d.index);
    }

    printf("sections:\n");
    nsec = iw_module_section_count(m);
    for (uint32_t i = 0; i < nsec && i < MAX_LISTED_SECTIONS; i++) {
        iw_section_desc sd;
        if (iw_module_section(m, i, &sd) != IW_OK)
            continue;
        if (sd.id == 0) {
            char label[320];
            sbuf b = {label, sizeof label, 0};
            label[0] = '\0';
            sb_add(&b, "custom \"");
            if (sd.name)
                sb_bytes(&b, sd.name, sd.name_len, 64);
            sb_add(&b, "\"");
            printf("  %-26s %" PRIu32 " bytes\n", label, sd.size);
        } else {
            printf("  %-26s %" PRIu32 " bytes\n", section_name(sd.id),
                   sd.size);
        }
    }
    if (nsec > MAX_LISTED_SECTIONS)
        printf("  ... %" PRIu32 " more sections\n", nsec - MAX_LISTED_SECTIONS);
    iw_module_free(m);
    free(bytes);
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* run                                                                      */

static void help_run(FILE *out)
{
    fprintf(
        out,
        "usage: isoflow wasm run [OPTIONS] FILE.wasm [ARGS...]\n"
        "       isoflow wasm run [OPTIONS] --invoke NAME FILE.wasm [ARGS...]\n"
        "\n"
        "Runs a WebAssembly module.  Without --invoke it runs the WASI\n"
        "command's '_start' with the program arguments [FILE's base name,\n"
        "ARGS...] and exits with the program's exit code.  With --invoke it\n"
        "calls the exported function NAME with ARGS converted to its\n"
        "parameter types ('_initialize' first when the module exports it)\n"
        "and prints each result on its own line.  WASI\n"
        "(wasi_snapshot_preview1) imports are provided in both modes; the\n"
        "guest sees only its arguments, the --env variables, stdin/stdout/\n"
        "stderr and the --dir directories.\n\n"
        "options (VALUE may also follow '=', e.g. --fuel=1000):\n"
        "  --invoke NAME        call the exported function NAME\n"
        "                       ARGS: i32/i64 decimal or 0x hex (negative\n"
        "                       allowed), f32/f64 decimal, nan, inf, -inf\n"
        "  --fuel N             stop with 'out of fuel' after N loop\n"
        "                       iterations and calls\n"
        "  --timeout MS         stop with 'timeout' after MS milliseconds of\n"
        "                       instantiation and run time\n"
        "  --max-memory SIZE    cap linear memory: bytes, or with K/M/G\n"
        "                       (KiB/MiB/GiB), or Np for N 64 KiB pages;\n"
        "                       rounded down to whole pages, at most 4G;\n"
        "                       memory.grow beyond it returns -1\n"
        "  --dir HOST[:GUEST]   grant the directory HOST, visible to the\n"
        "                       guest as GUEST (default: HOST); repeatable.\n"
        "                       Without --dir there is no file system access;\n"
        "                       absolute paths, '..' above a granted\n"
        "                       directory and symbolic links are refused\n"
        "  --env KEY=VALUE      set a guest environment variable; repeatable\n"
        "                       (the host's environment is not passed)\n"
        "  --time               print load+instantiate and call times to "
        "stderr\n"
        "  --help               show this text\n\n"
        "exit status: the guest's exit code (modulo 256), or 0 after\n"
        "             --invoke; 1 error (bad module, unresolved import);\n"
        "             2 usage; 3 trap (including out of fuel and timeout)\n\n"
        "examples:\n"
        "  isoflow wasm run --invoke fib build/examples/wasm/fib.wasm 30\n"
        "  isoflow wasm run hello.wasm one two\n"
        "  isoflow wasm run --env GREETING=hi --timeout 500 hello.wasm\n"
        "  isoflow wasm run --dir ./data:/data --max-memory 16M app.wasm "
        "/data\n"
        "  echo 1 2 3 | isoflow wasm run --fuel 1000000 count.wasm\n");
}

/* 1 when `s` looks like a negative number rather than an option. */
static int is_negative_number(const char *s)
{
    if (s[0] != '-')
        return 0;
    if (isdigit((unsigned char)s[1]) || s[1] == '.')
        return 1;
    return cli_streq(s, "-inf") || cli_streq(s, "-infinity") ||
           cli_streq(s, "-nan");
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* Parses an integer of `bits` (32 or 64): optional sign, decimal or 0x hex.
 * Values up to 2^bits-1 are accepted and wrap to the two's complement bit
 * pattern.  Returns 1 on success. */
static int parse_int(const char *s, unsigned bits, uint64_t *out)
{
    const char *p = s;
    char *end;
    int neg = 0, base = 10;
    unsigned long long v;
    uint64_t limit = bits == 32 ? UINT32_MAX : UINT64_MAX;

    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    }
    if (base == 16 ? !isxdigit((unsigned char)*p) : !isdigit((unsigned char)*p))
        return 0;
    errno = 0;
    v = strtoull(p, &end, base);
    if (errno != 0 || *end != '\0')
        return 0;
    if (neg) {
        uint64_t most_neg = (uint64_t)1 << (bits - 1);
        if (v > most_neg)
            return 0;
        *out = (0 - (uint64_t)v) & limit;
    } else {
        if (v > limit)
            return 0;
        *out = v;
    }
    return 1;
}

/* Parses one argument `s` as a value of `type` into *v; 1 on success. */
static int parse_val(const char *s, uint8_t type, iw_val *v)
{
    char *end;
    uint64_t u;
    memset(v, 0, sizeof *v);
    v->type = type;
    if (s[0] == '\0' || isspace((unsigned char)s[0]))
        return 0;
    switch (type) {
    case IW_I32:
        if (!parse_int(s, 32, &u))
            return 0;
        v->of.i32 = (int32_t)(uint32_t)u;
        return 1;
    case IW_I64:
        if (!parse_int(s, 64, &u))
            return 0;
        memcpy(&v->of.i64, &u, sizeof u);
        return 1;
    case IW_F32: {
        float f;
        errno = 0;
        f = strtof(s, &end);
        if (end == s || *end != '\0' || (errno == ERANGE && isinf(f)))
            return 0;
        memcpy(&v->of.f32, &f, sizeof f);
        return 1;
    }
    case IW_F64: {
        double d;
        errno = 0;
        d = strtod(s, &end);
        if (end == s || *end != '\0' || (errno == ERANGE && isinf(d)))
            return 0;
        memcpy(&v->of.f64, &d, sizeof d);
        return 1;
    }
    case IW_FUNCREF:
    case IW_EXTERNREF:
        v->of.ref = NULL;
        return cli_streq(s, "null");
    default:
        return 0;
    }
}

/* Prints a float given as double `d` with `digits` significant digits
 * ("%.*g"); NaNs show the sign of the original bits. */
static void print_float(double d, int negative, int digits)
{
    if (isnan(d))
        printf("%s\n", negative ? "-nan" : "nan");
    else if (isinf(d))
        printf("%s\n", d < 0 ? "-inf" : "inf");
    else {
        printf("%.*g\n", digits, d);
    }
}

static void print_val(const iw_val *v)
{
    switch (v->type) {
    case IW_I32:
        printf("%" PRId32 "\n", v->of.i32);
        break;
    case IW_I64:
        printf("%" PRId64 "\n", v->of.i64);
        break;
    case IW_F32: {
        float f;
        memcpy(&f, &v->of.f32, sizeof f);
        print_float((double)f, (v->of.f32 >> 31) != 0, 9);
        break;
    }
    case IW_F64: {
        double d;
        memcpy(&d, &v->of.f64, sizeof d);
        print_float(d, (v->of.f64 >> 63) != 0, 17);
        break;
    }
    case IW_FUNCREF:
        printf("%s\n", v->of.ref ? "funcref" : "null");
        break;
    case IW_EXTERNREF:
        printf("%s\n", v->of.ref ? "externref" : "null");
        break;
    default:
        printf("?\n");
        break;
    }
}

/* Prints the trap recorded in the store:
 * "isoflow: trap: MSG in function NAME|#IDX", with `msg` (when not NULL)
 * in place of the store's message. */
static void report_trap(const iw_store *s, const iw_module *m,
                        const char *msg)
{
    if (!msg)
        msg = iw_store_errmsg(s);
    int64_t fidx = iw_store_trap_func(s);
    char where[300];
    sbuf b = {where, sizeof where, 0};
    where[0] = '\0';
    if (!msg || !msg[0])
        msg = iw_trap_msg(iw_store_trap(s));
    if (fidx >= 0 && fidx <= (int64_t)UINT32_MAX) {
        const char *name = iw_module_func_name(m, (uint32_t)fidx);
        sb_add(&b, " in function ");
        if (name) {
            sb_name(&b, name, 200);
        } else {
            sb_add(&b, "#");
            sb_u32(&b, (uint32_t)fidx);
        }
    }
    cli_errf("trap: %s%s", msg, where);
}

/* Checks that every import other than wasi_snapshot_preview1 (which the
 * WASI context provides) can be satisfied; none can yet.  Returns 0, or
 * prints "FILE: unresolved import M.N" and returns the exit code. */
static int check_imports(const char *path, const iw_module *m)
{
    uint32_t n = iw_module_import_count(m);
    iw_extern_desc d;
    for (uint32_t i = 0; i < n; i++) {
        char name[512];
        sbuf b = {name, sizeof name, 0};
        if (iw_module_import(m, i, &d) != IW_OK)
            continue;
        if (d.module && cli_streq(d.module, "wasi_snapshot_preview1"))
            continue;
        name[0] = '\0';
        sb_name(&b, d.module ? d.module : "", 200);
        sb_add(&b, ".");
        sb_name(&b, d.name ? d.name : "", 200);
        cli_errf("%s: unresolved import %s", path, name);
        return CLI_EXIT_FAIL;
    }
    return 0;
}

/* Finds the exported function `name` in the module's export list. */
static int module_func_export(const iw_module *m, const char *name,
                              iw_extern_desc *out)
{
    uint32_t n = iw_module_export_count(m);
    for (uint32_t i = 0; i < n; i++) {
        if (iw_module_export(m, i, out) == IW_OK && out->name &&
            cli_streq(out->name, name))
            return out->kind == IW_EXTERN_FUNC ? 1 : -1;
    }
    return 0;
}

/* Prints "(exported functions: a, b)" hints after a missing export. */
static void list_func_exports(const iw_module *m, char *buf, size_t cap)
{
    sbuf b = {buf, cap, 0};
    uint32_t n = iw_module_export_count(m), shown = 0;
    iw_extern_desc d;
    buf[0] = '\0';
    for (uint32_t i = 0; i < n; i++) {
        if (iw_module_export(m, i, &d) != IW_OK || d.kind != IW_EXTERN_FUNC ||
            !d.name)
            continue;
        if (shown++ == 10) {
            sb_add(&b, ", ...");
            break;
        }
        sb_add(&b, shown == 1 ? " (exported functions: " : ", ");
        sb_name(&b, d.name, 64);
    }
    sb_add(&b, shown ? ")" : " (it exports no functions)");
}

/* ------------------------------------------------------------------------ */
/* run: options, the timeout watchdog, the run itself.                     */

#define RUN_MAX_TIMEOUT_MS 2147483647u /* about 24 days */
#define RUN_GRACE_MS 1000u /* after an interrupt, before giving up on a guest
                              blocked in a host call */
#define WASM_PAGE 65536u
#define WASM_MAX_PAGES 65536u

/* Everything `isoflow wasm run` was asked to do.  Strings borrow argv. */
typedef struct run_opts {
    const char *invoke; /* --invoke NAME or NULL for _start */
    int timing;         /* --time */
    int64_t fuel;       /* --fuel N, -1 when unmetered */
    uint64_t timeout_ms; /* --timeout MS, 0 when none */
    int has_max_pages;
    uint32_t max_pages; /* --max-memory, in pages */
    iw_wasi_dir *dirs;  /* --dir entries (malloc'ed; strings in dirbuf) */
    char **dirbuf;      /* malloc'ed copies of the split HOST/GUEST */
    int ndirs;
    const char **env;   /* --env entries (malloc'ed array, argv strings) */
    int nenv;
} run_opts;

static void run_opts_free(run_opts *o)
{
    for (int i = 0; i < 2 * o->ndirs; i++)
        free(o->dirbuf[i]);
    free(o->dirbuf);
    free(o->dirs);
    free(o->env);
}

/* Parses a whole decimal number (no sign, no spaces) into *out; 1 on
 * success, 0 on anything else or when it exceeds `max`. */
static int parse_count(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (!isdigit((unsigned char)s[0]))
        return 0;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return 0;
    *out = v;
    return 1;
}

/* Parses a --max-memory SIZE: "N" bytes, "NK"/"NM"/"NG" (KiB, MiB, GiB;
 * lower case too) or "Np" pages; bytes are rounded down to whole pages.
 * Returns 1 with *pages <= 65536, 0 when malformed or larger than 4 GiB. */
static int parse_mem_size(const char *s, uint32_t *pages)
{
    char num[32];
    size_t n = strlen(s);
    uint64_t v, mult = 1;
    int in_pages = 0;
    if (n == 0 || n >= sizeof num)
        return 0;
    memcpy(num, s, n + 1);
    switch (num[n - 1]) {
    case 'k': case 'K': mult = 1024u; break;
    case 'm': case 'M': mult = 1024u * 1024u; break;
    case 'g': case 'G': mult = 1024u * 1024u * 1024u; break;
    case 'p': case 'P': in_pages = 1; break;
    default: n++; break; /* no suffix: keep the last digit */
    }
    num[n - 1] = '\0';
    if (!parse_count(num, UINT64_MAX, &v))
        return 0;
    if (in_pages) {
        if (v > WASM_MAX_PAGES)
            return 0;
        *pages = (uint32_t)v;
        return 1;
    }
    if (v > (uint64_t)WASM_MAX_PAGES * WASM_PAGE / mult)
        return 0;
    *pages = (uint32_t)(v * mult / WASM_PAGE);
    return 1;
}

/* Splits "HOST[:GUEST]" at the first ':' and appends it to o->dirs.
 * Returns 0, or prints why and returns -1. */
static int add_dir(run_opts *o, const char *spec)
{
    const char *colon = strchr(spec, ':');
    size_t hlen = colon ? (size_t)(colon - spec) : strlen(spec);
    const char *guest = colon ? colon + 1 : spec;
    size_t glen = strlen(guest);
    iw_wasi_dir *nd;
    char **nb, *h, *g;

    if (hlen == 0 || glen == 0) {
        cli_errf("option '--dir' needs HOST[:GUEST] with non-empty paths, "
                 "got '%s'",
                 spec);
        return -1;
    }
    nd = realloc(o->dirs, (size_t)(o->ndirs + 1) * sizeof *nd);
    if (!nd)
        goto nomem;
    o->dirs = nd;
    nb = realloc(o->dirbuf, (size_t)(o->ndirs + 1) * 2 * sizeof *nb);
    if (!nb)
        goto nomem;
    o->dirbuf = nb;
    h = malloc(hlen + 1);
    g = malloc(glen + 1);
    if (!h || !g) {
        free(h);
        free(g);
        goto nomem;
    }
    memcpy(h, spec, hlen);
    h[hlen] = '\0';
    memcpy(g, guest, glen + 1);
    o->dirbuf[2 * o->ndirs] = h;
    o->dirbuf[2 * o->ndirs + 1] = g;
    o->dirs[o->ndirs].host_path = h;
    o->dirs[o->ndirs].guest_path = g;
    o->ndirs++;
    return 0;
nomem:
    cli_errf("out of memory");
    return -1;
}

static int add_env(run_opts *o, const char *kv)
{
    const char **ne;
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        cli_errf("option '--env' needs KEY=VALUE, got '%s'", kv);
        return -1;
    }
    ne = realloc(o->env, (size_t)(o->nenv + 1) * sizeof *ne);
    if (!ne) {
        cli_errf("out of memory");
        return -1;
    }
    o->env = ne;
    o->env[o->nenv++] = kv;
    return 0;
}

/* Matches option `name` at argv[*i], as "NAME VALUE" or "NAME=VALUE".
 * Returns 1 with *val set and *i advanced past the option, 0 when argv[*i]
 * is another option, -1 (after printing why) when the value is missing. */
static int opt_value(int argc, char **argv, int *i, const char *name,
                     const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0)
        return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        (*i)++;
    } else if (a[n] == '\0') {
        if (*i + 1 >= argc) {
            cli_errf("option '%s' needs a value (see 'isoflow wasm run "
                     "--help')",
                     name);
            return -1;
        }
        *val = argv[*i + 1];
        *i += 2;
    } else {
        return 0;
    }
    if ((*val)[0] == '\0') {
        cli_errf("option '%s' needs a value (see 'isoflow wasm run --help')",
                 name);
        return -1;
    }
    return 1;
}

/* Parses the options before FILE into *o.  Returns the index of the first
 * non-option argument, or -1 after printing an error (exit 2), or -2 after
 * printing --help (exit 0). */
static int parse_run_opts(int argc, char **argv, run_opts *o)
{
    int i = 1;
    memset(o, 0, sizeof *o);
    o->fuel = -1;
    while (i < argc) {
        const char *a = argv[i], *v = NULL;
        uint64_t num;
        int r;
        if (cli_streq(a, "--")) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == '\0' || is_negative_number(a))
            break;
        if (cli_streq(a, "--help") || cli_streq(a, "-h")) {
            help_run(stdout);
            return -2;
        }
        if (cli_streq(a, "--time")) {
            o->timing = 1;
            i++;
            continue;
        }
        if ((r = opt_value(argc, argv, &i, "--invoke", &v)) != 0) {
            if (r < 0)
                return -1;
            o->invoke = v;
        } else if ((r = opt_value(argc, argv, &i, "--fuel", &v)) != 0) {
            if (r < 0)
                return -1;
            if (!parse_count(v, INT64_MAX, &num)) {
                cli_errf("option '--fuel' needs a whole number >= 0, got "
                         "'%s'",
                         v);
                return -1;
            }
            o->fuel = (int64_t)num;
        } else if ((r = opt_value(argc, argv, &i, "--timeout", &v)) != 0) {
            if (r < 0)
                return -1;
            if (!parse_count(v, RUN_MAX_TIMEOUT_MS, &num) || num == 0) {
                cli_errf("option '--timeout' needs milliseconds from 1 to "
                         "%u, got '%s'",
                         RUN_MAX_TIMEOUT_MS, v);
                return -1;
            }
            o->timeout_ms = num;
        } else if ((r = opt_value(argc, argv, &i, "--max-memory", &v)) != 0) {
            if (r < 0)
                return -1;
            if (!parse_mem_size(v, &o->max_pages)) {
                cli_errf("option '--max-memory' needs a size such as 65536, "
                         "512K, 4M, 1G or 16p (at most 4G), got '%s'",
                         v);
                return -1;
            }
            o->has_max_pages = 1;
        } else if ((r = opt_value(argc, argv, &i, "--dir", &v)) != 0) {
            if (r < 0 || add_dir(o, v) != 0)
                return -1;
        } else if ((r = opt_value(argc, argv, &i, "--env", &v)) != 0) {
            if (r < 0 || add_env(o, v) != 0)
                return -1;
        } else {
            cli_errf("unknown option '%s' (see 'isoflow wasm run --help')", a);
            return -1;
        }
    }
    return i;
}

/* The --timeout watchdog: a thread that waits on a condition variable until
 * the deadline (CLOCK_MONOTONIC) and then interrupts the store.  If the
 * guest is still not done RUN_GRACE_MS later (blocked in a host call such
 * as a read from a terminal), it ends the process with exit code 3. */
typedef struct watchdog {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    iw_store *store;      /* borrowed; outlives the watchdog */
    uint64_t ms;          /* the limit, for messages */
    struct timespec deadline;
    int done;             /* set by the runner when the guest finished */
    int fired;            /* set by the watchdog when it interrupted */
    int running;          /* the thread exists and must be joined */
} watchdog;

static void ts_add_ms(struct timespec *ts, uint64_t ms)
{
    uint64_t ns = (uint64_t)ts->tv_nsec + (ms % 1000u) * 1000000u;
    ts->tv_sec += (time_t)(ms / 1000u) + (time_t)(ns / 1000000000u);
    ts->tv_nsec = (long)(ns % 1000000000u);
}

/* Waits until w->done or the absolute time `until`; returns 1 when the time
 * came first.  Called with w->mu held. */
static int wd_wait(watchdog *w, const struct timespec *until)
{
    while (!w->done) {
        int rc = pthread_cond_timedwait(&w->cv, &w->mu, until);
        if (rc == ETIMEDOUT)
            return !w->done;
    }
    return 0;
}

static void *wd_main(void *arg)
{
    watchdog *w = arg;
    pthread_mutex_lock(&w->mu);
    if (wd_wait(w, &w->deadline)) {
        struct timespec grace = w->deadline;
        w->fired = 1;
        iw_store_interrupt(w->store);
        ts_add_ms(&grace, RUN_GRACE_MS);
        if (wd_wait(w, &grace)) {
            cli_errf("timeout after %" PRIu64 " ms: the guest is blocked in "
                     "a host call",
                     w->ms);
            fflush(NULL);
            _exit(CLI_EXIT_TRAP);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Starts the watchdog for `ms` milliseconds from now.  Returns 0, or -1
 * after printing why (nothing to stop then). */
static int wd_start(watchdog *w, iw_store *s, uint64_t ms)
{
    pthread_condattr_t ca;
    memset(w, 0, sizeof *w);
    w->store = s;
    w->ms = ms;
    if (pthread_condattr_init(&ca) != 0)
        goto fail;
    if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&w->cv, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        goto fail;
    }
    pthread_condattr_destroy(&ca);
    if (pthread_mutex_init(&w->mu, NULL) != 0) {
        pthread_cond_destroy(&w->cv);
        goto fail;
    }
    clock_gettime(CLOCK_MONOTONIC, &w->deadline);
    ts_add_ms(&w->deadline, ms);
    if (pthread_create(&w->thread, NULL, wd_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        goto fail;
    }
    w->running = 1;
    return 0;
fail:
    cli_errf("cannot start the --timeout watchdog thread");
    return -1;
}

/* Tells the watchdog the guest is done and joins it.  Returns 1 when it
 * had interrupted the store. */
static int wd_stop(watchdog *w)
{
    if (!w->running)
        return 0;
    pthread_mutex_lock(&w->mu);
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    w->running = 0;
    return w->fired;
}

/* Reports a failed instantiation or call: a trap (exit 3, naming the
 * timeout when the watchdog caused it), a guest exit (its code), or an
 * error (exit 1). */
static int report_status(iw_status st, const iw_store *s, const iw_module *m,
                         const char *path, const char *what, int timed_out,
                         uint64_t timeout_ms, const char *err)
{
    switch (st) {
    case IW_TRAP:
        if (timed_out && iw_store_trap(s) == IW_TRAP_INTERRUPTED) {
            char msg[96];
            snprintf(msg, sizeof msg,
                     "timeout after %" PRIu64 " ms (interrupted)", timeout_ms);
            report_trap(s, m, msg);
        } else {
            report_trap(s, m, NULL);
        }
        return CLI_EXIT_TRAP;
    case IW_EXIT:
        return iw_store_exit_code(s) & 0xFF;
    default: {
        const char *msg = err && err[0] ? err : iw_store_errmsg(s);
        if (what)
            cli_errf("%s: %s: %s", path, what,
                     msg && msg[0] ? msg : iw_status_msg(st));
        else
            cli_errf("%s: %s", path, msg && msg[0] ? msg : iw_status_msg(st));
        return CLI_EXIT_FAIL;
    }
    }
}

/* Returns the last path component of `path` (borrowed from it). */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

/*
 * `isoflow wasm run`: parses options, loads FILE, creates the WASI context
 * (arguments, --env, stdio, --dir), links WASI imports, instantiates under
 * the --max-memory cap, --fuel and --timeout watchdog, and calls '_start'
 * or the --invoke function.  Returns the process exit code (see the file
 * comment); everything it allocates is freed before returning.
 */
static int cmd_run(int argc, char **argv)
{
    const char *path = NULL, *fname;
    char **args = NULL;
    int nargs = 0, timing, i, rc = CLI_EXIT_FAIL, npos, timed_out = 0;
    uint8_t *bytes = NULL;
    size_t len = 0;
    run_opts o;
    watchdog wd;
    iw_module *m = NULL;
    iw_store *s = NULL;
    iw_wasi *wasi = NULL;
    iw_extern *imports = NULL;
    const char **gargv = NULL;
    iw_instance *inst = NULL;
    iw_func *f;
    iw_functype ft;
    iw_extern_desc d;
    iw_config cfg;
    iw_wasi_config wcfg;
    iw_val *vals = NULL, *results = NULL;
    iw_status st;
    uint64_t t_load = 0, t_inst0, t_inst = 0, t_call0, t_call = 0;
    char err[512];

    memset(&wd, 0, sizeof wd);
    i = parse_run_opts(argc, argv, &o);
    if (i < 0) {
        run_opts_free(&o);
        return i == -2 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
    }
    timing = o.timing;
    npos = argc - i;
    if (npos < 1) {
        cli_errf("wasm run needs a FILE (see 'isoflow wasm run --help')");
        run_opts_free(&o);
        return CLI_EXIT_USAGE;
    }
    if (o.invoke && npos >= 2 && !ends_with(argv[i], ".wasm") &&
        ends_with(argv[argc - 1], ".wasm")) {
        /* "--invoke NAME ARGS... FILE.wasm" */
        path = argv[argc - 1];
        args = argv + i;
        nargs = npos - 1;
    } else {
        path = argv[i];
        args = argv + i + 1;
        nargs = npos - 1;
    }
    fname = o.invoke ? o.invoke : "_start";

    /* The guest's view of the host; a --dir that cannot be opened is a bad
     * option value, reported before the module is even read. */
    gargv = calloc((size_t)nargs + 1, sizeof *gargv);
    if (!gargv) {
        cli_errf("out of memory");
        goto done;
    }
    gargv[0] = base_name(path);
    iw_wasi_config_default(&wcfg);
    wcfg.argc = 1;
    if (!o.invoke) {
        for (int k = 0; k < nargs; k++)
            gargv[k + 1] = args[k];
        wcfg.argc = 1 + nargs;
    }
    wcfg.argv = gargv;
    wcfg.envc = o.nenv;
    wcfg.envp = o.env;
    wcfg.ndirs = o.ndirs;
    wcfg.dirs = o.dirs;
    err[0] = '\0';
    st = iw_wasi_new(&wcfg, &wasi, err, sizeof err);
    if (st != IW_OK) {
        if (st == IW_ARG)
            cli_errf("option '--dir': %s", err);
        else
            cli_errf("%s", err[0] ? err : iw_status_msg(st));
        rc = st == IW_ARG ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
        goto done;
    }

    if (load_module(path, &bytes, &len, &m, &t_load) != 0)
        goto done;

    /* Resolve the function and its arguments before running anything. */
    switch (module_func_export(m, fname, &d)) {
    case 1:
        break;
    case -1:
        cli_errf("%s: export '%s' is a %s, not a function", path, fname,
                 iw_extern_kind_name(d.kind));
        goto done;
    default: {
        char list[512];
        list_func_exports(m, list, sizeof list);
        if (o.invoke)
            cli_errf("%s: no exported function '%s'%s", path, fname, list);
        else
            cli_errf("%s: no '_start' export; use --invoke NAME%s", path, list);
        goto done;
    }
    }
    if (o.invoke ? (uint32_t)nargs != d.func.nparams : d.func.nparams > 0) {
        char types[512];
        sbuf b = {types, sizeof types, 0};
        types[0] = '\0';
        sb_types(&b, d.func.params, d.func.nparams);
        cli_errf("%s expects %" PRIu32 " argument%s %s, got %d", fname,
                 d.func.nparams, d.func.nparams == 1 ? "" : "s", types,
                 o.invoke ? nargs : 0);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    vals = calloc(d.func.nparams ? d.func.nparams : 1, sizeof *vals);
    results = calloc(d.func.nresults ? d.func.nresults : 1, sizeof *results);
    if (!vals || !results) {
        cli_errf("out of memory");
        goto done;
    }
    for (uint32_t k = 0; o.invoke && k < d.func.nparams; k++) {
        if (!parse_val(args[k], d.func.params[k], &vals[k])) {
            cli_errf("%s: argument %" PRIu32 ": '%s' is not a valid %s", fname,
                     k + 1, args[k], iw_valtype_name(d.func.params[k]));
            rc = CLI_EXIT_USAGE;
            goto done;
        }
    }
    rc = check_imports(path, m);
    if (rc != 0)
        goto done;
    rc = CLI_EXIT_FAIL;

    iw_config_default(&cfg);
    if (o.has_max_pages)
        cfg.max_memory_pages = o.max_pages;
    s = iw_store_new(&cfg);
    imports = calloc(iw_module_import_count(m) + 1u, sizeof *imports);
    if (!s || !imports) {
        cli_errf("out of memory");
        goto done;
    }
    err[0] = '\0';
    st = iw_wasi_link(wasi, s, m, imports, err, sizeof err);
    if (st != IW_OK) {
        cli_errf("%s: %s", path, err[0] ? err : iw_status_msg(st));
        goto done;
    }
    if (o.fuel >= 0)
        iw_store_set_fuel(s, o.fuel);
    /* The guest writes to fd 1 directly: flush what the command printed. */
    fflush(stdout);
    if (o.timeout_ms && wd_start(&wd, s, o.timeout_ms) != 0)
        goto done;

    err[0] = '\0';
    t_inst0 = cli_now_ns();
    st = iw_instantiate(s, m, imports, iw_module_import_count(m), &inst, err,
                        sizeof err);
    if (st == IW_OK && o.invoke && !cli_streq(fname, "_initialize") &&
        (f = iw_instance_func(inst, "_initialize")) != NULL) {
        ft = iw_func_type(f);
        if (ft.nparams == 0 && ft.nresults == 0)
            st = iw_call_func(f, NULL, 0, NULL, 0);
    }
    t_inst = cli_now_ns() - t_inst0;
    if (st != IW_OK) {
        timed_out = wd_stop(&wd);
        rc = report_status(st, s, m, path, NULL, timed_out, o.timeout_ms,
                           err);
        goto done;
    }
    f = iw_instance_func(inst, fname);
    if (!f) {
        wd_stop(&wd);
        cli_errf("%s: no exported function '%s'", path, fname);
        goto done;
    }
    ft = iw_func_type(f);
    t_call0 = cli_now_ns();
    st = iw_call_func(f, vals, d.func.nparams, results, ft.nresults);
    t_call = cli_now_ns() - t_call0;
    timed_out = wd_stop(&wd);
    if (timing)
        fprintf(stderr, "time: load+instantiate %.3f ms, call %.3f ms\n",
                (double)(t_load + t_inst) / 1e6, (double)t_call / 1e6);
    timing = 0;
    if (st == IW_OK) {
        for (uint32_t k = 0; k < ft.nresults && k < d.func.nresults; k++)
            print_val(&results[k]);
        rc = CLI_EXIT_OK;
    } else {
        rc = report_status(st, s, m, path, fname, timed_out, o.timeout_ms,
                           NULL);
    }
done:
    wd_stop(&wd);
    if (timing && t_load)
        fprintf(stderr, "time: load+instantiate %.3f ms\n",
                (double)(t_load + t_inst) / 1e6);
    free(vals);
    free(results);
    free(imports);
    iw_store_free(s);
    iw_wasi_free(wasi);
    iw_module_free(m);
    free(bytes);
    free(gargv);
    run_opts_free(&o);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* `isoflow wasm SUBCOMMAND`                                                */

typedef struct wasm_sub {
    const char *name;
    const char *summary;
    int (*fn)(int argc, char **argv);
    void (*help)(FILE *out);
} wasm_sub;

static const wasm_sub wasm_subs[] = {
    {"validate", "check that modules decode and validate", cmd_validate,
     help_validate},
    {"info", "list a module's imports, exports, memory and sections", cmd_info,
     help_info},
    {"run", "run _start or an exported function", cmd_run, help_run},
};

#define NSUBS (sizeof wasm_subs / sizeof wasm_subs[0])

void cli_cmd_wasm_help(FILE *out)
{
    fprintf(out, "usage: isoflow wasm SUBCOMMAND [ARGS...]\n\n"
                 "subcommands:\n");
    for (size_t i = 0; i < NSUBS; i++)
        fprintf(out, "  %-10s %s\n", wasm_subs[i].name, wasm_subs[i].summary);
    fprintf(out, "\nRun 'isoflow wasm SUBCOMMAND --help' for details.\n"
                 "example: isoflow wasm run --invoke fib fib.wasm 30\n");
}

static const wasm_sub *find_sub(const char *name)
{
    for (size_t i = 0; i < NSUBS; i++)
        if (cli_streq(wasm_subs[i].name, name))
            return &wasm_subs[i];
    return NULL;
}

/* Dispatches `isoflow wasm SUB ...`; argv[0] is "wasm". */
int cli_cmd_wasm(int argc, char **argv)
{
    const wasm_sub *sub;
    if (argc < 2) {
        cli_cmd_wasm_help(stderr);
        return CLI_EXIT_USAGE;
    }
    if (cli_streq(argv[1], "--help") || cli_streq(argv[1], "-h")) {
        cli_cmd_wasm_help(stdout);
        return CLI_EXIT_OK;
    }
    if (cli_streq(argv[1], "help")) {
        if (argc < 3) {
            cli_cmd_wasm_help(stdout);
            return CLI_EXIT_OK;
        }
        sub = find_sub(argv[2]);
        if (!sub) {
            cli_errf("unknown wasm subcommand '%s' (see 'isoflow wasm "
                     "--help')",
                     argv[2]);
            return CLI_EXIT_USAGE;
        }
        sub->help(stdout);
        return CLI_EXIT_OK;
    }
    sub = find_sub(argv[1]);
    if (!sub) {
        cli_errf("unknown wasm subcommand '%s' (see 'isoflow wasm --help')",
                 argv[1]);
        return CLI_EXIT_USAGE;
    }
    return sub->fn(argc - 1, argv + 1);
}
