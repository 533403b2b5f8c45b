/*
 * cmd_node.c - `isoflow node --flow FILE.flow --name NAME`: runs the part of
 * a flow placed on one node (an edge or cloud node, or one device) and links
 * it to the other nodes over mutual TLS (docs/NODES.md); with --trust it
 * takes signed deploys from operators (docs/DEPLOY.md), with --watch DIR
 * unsigned stage files from a directory (development mode).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "flow.h"

#define NODE_MAX_STAGES 1024


void cli_cmd_node_help(FILE *out)
{
    fprintf(out,
        "usage: isoflow node --flow FILE.flow --name NAME\n"
        "                    [--certs DIR | --insecure] [--state DIR]\n"
        "                    [--trust KEYS] [--watch DIR]\n"
        "                    [--spool-max SIZE] [--spool-sync POLICY]\n"
        "                    [--spool-full POLICY]\n"
        "                    [--duration S] [--stats-json F] [--quiet]\n\n"
        "Runs the stages of one node of a flow: NAME is a node declared\n"
        "with `node NAME @edge|@cloud ...` or a device of a device group\n"
        "declared with `connect NODE`.  The node listens and connects as\n"
        "the flow declares, over TLS 1.3 with mutual authentication, and\n"
        "delivers every message exactly once to the next node across\n"
        "crashes and link failures (see docs/NODES.md).  Stops cleanly on\n"
        "Ctrl-C/SIGTERM: drains, syncs its spools, closes links with BYE.\n\n"
        "options:\n"
        "  --flow FILE      the flow file (the same on every node)\n"
        "  --name NAME      which node this process is\n"
        "  --certs DIR      ca.crt, NAME.crt, NAME.key (from `isoflow ca`;\n"
        "                   default ./certs)\n"
        "  --insecure       plaintext links, no authentication (warns)\n"
        "  --state DIR      spools and watermarks under DIR/NAME/, deployed\n"
        "                   versions under DIR/NAME/deploy/ (default ./state)\n"
        "  --trust KEYS     public keys deploys must be signed with: a comma\n"
        "                   list of .pub files and directories (without it\n"
        "                   every deploy is rejected)\n"
        "  --watch DIR      development mode: when DIR/STAGE.wasm (or .so)\n"
        "                   changes, swap it in WITHOUT a signature (warns)\n"
        "  --spool-max SIZE what each outgoing link may hold on disk while\n"
        "                   the next node is away (K/M/G; default 64M)\n"
        "  --spool-sync P   none | batch (fdatasync every 50 ms, default) |\n"
        "                   always (before every ACK; see docs/NODES.md)\n"
        "  --spool-full P   reject (back-pressure to the sources, default) |\n"
        "                   drop-oldest (the oldest records go, counted)\n"
        "  --duration S     stop after S seconds (default: until a signal)\n"
        "  --time-scale X   run source schedules X times faster\n"
        "  --workers N      worker threads (default: the number of cores)\n"
        "  --dead-letter F  where failed messages go\n"
        "  --stats-json F   write the final figures as JSON\n"
        "  --quiet          no live status line\n\n"
        "exit status: 0 after a clean stop, 1 when the node cannot start,\n"
        "2 on a bad command line.\n"
        "example: isoflow node --flow home.flow --name edge --certs certs\n");
}

/* Sums the per-stage figures into in/out and the busiest rate. */
static void print_status(FILE *out, int tty, const char *name, double el,
                         const fl_stage_stats *st, uint32_t n,
                         const fl_run_stats *tot, const fl_node_stats *ns)
{
    double rate = 0;
    uint64_t errors = 0;
    for (uint32_t i = 0; i < n; i++) {
        errors += st[i].errors;
        if (st[i].rate > rate)
            rate = st[i].rate;
    }
    fprintf(out,
            "%s[%6.1fs] %s %.0f msg/s | links up %u | in %llu | out %llu | "
            "spooled %llu | actuations %llu | errors %llu%s",
            tty ? "\r" : "", el, name, rate, ns->links_up,
            (unsigned long long)ns->msgs_in, (unsigned long long)ns->msgs_out,
            (unsigned long long)ns->spooled,
            (unsigned long long)tot->actuations, (unsigned long long)errors,
            tty ? "\033[K" : "\n");
    fflush(out);
}

static int write_stats(const char *path, double el, const fl_stage_stats *st,
                       uint32_t n, const fl_run_stats *tot,
                       const fl_node_stats *ns)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        cli_errf("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f,
            "{\"elapsed_s\":%.3f,\"produced\":%llu,\"delivered\":%llu,"
            "\"actuations\":%llu,\"errors\":%llu,\"links_up\":%u,"
            "\"msgs_in\":%llu,\"msgs_out\":%llu,\"spooled\":%llu,"
            "\"e2e_p50_us\":%.1f,\"e2e_p99_us\":%.1f,\"stages\":[",
            el, (unsigned long long)tot->produced,
            (unsigned long long)tot->delivered,
            (unsigned long long)tot->actuations,
            (unsigned long long)tot->errors, ns->links_up,
            (unsigned long long)ns->msgs_in, (unsigned long long)ns->msgs_out,
            (unsigned long long)ns->spooled, tot->e2e_p50_us, tot->e2e_p99_us);
    for (uint32_t i = 0; i < n; i++)
        fprintf(f,
                "%s{\"name\":\"%s\",\"in\":%llu,\"out\":%llu,"
                "\"actuations\":%llu,\"dropped\":%llu,\"errors\":%llu}",
                i ? "," : "", st[i].name, (unsigned long long)st[i].in,
                (unsigned long long)st[i].out,
                (unsigned long long)st[i].actuations,
                (unsigned long long)st[i].dropped,
                (unsigned long long)st[i].errors);
    fputs("]}\n", f);
    return fclose(f) == 0 ? 0 : -1;
}

/*
 * Raises RLIMIT_NOFILE for an edge holding many links (one descriptor per
 * link): the hard limit up to /proc/sys/fs/nr_open when the process may
 * (CAP_SYS_RESOURCE), then the soft limit to the hard one.  Logs the new
 * limit on stderr when it changed; failures are not errors (the node runs
 * with what it has).
 */
static void raise_nofile(void)
{
    struct rlimit rl, want;
    rlim_t before;
    FILE *f;
    unsigned long long nr = 0;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    before = rl.rlim_cur;
    f = fopen("/proc/sys/fs/nr_open", "r");
    if (f != NULL) {
        if (fscanf(f, "%llu", &nr) != 1)
            nr = 0;
        fclose(f);
    }
    if (nr > 0 && rl.rlim_max != RLIM_INFINITY && (rlim_t)nr > rl.rlim_max) {
        want.rlim_cur = want.rlim_max = (rlim_t)nr;
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl = want;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        want.rlim_cur = rl.rlim_max;
        want.rlim_max = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl = want;
    }
    if (rl.rlim_cur != before)
        fprintf(stderr, "isoflow: open files limit raised from %llu to %llu\n",
                (unsigned long long)before, (unsigned long long)rl.rlim_cur);
}

/* Parses a size: bytes, or with a K/M/G suffix (KiB, MiB, GiB); at least
 * 64 KiB.  0 on success, -1 when malformed or out of range. */
static int parse_bytes(const char *s, uint64_t *out)
{
    char *end = NULL;
    uint64_t mult = 1;
    if (!(*s >= '0' && *s <= '9'))
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    if (*end == 'K' || *end == 'k')
        mult = 1024ull, end++;
    else if (*end == 'M' || *end == 'm')
        mult = 1024ull * 1024ull, end++;
    else if (*end == 'G' || *end == 'g')
        mult = 1024ull * 1024ull * 1024ull, end++;
    if (*end || v > UINT64_MAX / mult || v * mult < 65536)
        return -1;
    *out = v * mult;
    return 0;
}

/*
 * `isoflow node`: parses options, loads the flow, runs this node's part
 * until a signal or --duration, stops (drain at most 5 s, spools synced,
 * BYE) and reports.  Returns a CLI_EXIT_* code.
 */
int cli_cmd_node(int argc, char **argv)
{
    const char *file = NULL, *stats_json = NULL, *watch_dir = NULL;
    cli_watch *watch = NULL;
    fl_run_opts o;
    double duration = 0;
    int quiet = 0, rc = CLI_EXIT_FAIL;
    fl_graph *g = NULL;
    fl_runtime *rt = NULL;
    fl_stage_stats *st = NULL;
    char err[4096];
    fl_status s;

    fl_run_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_streq(a, "--help") || cli_streq(a, "-h")) {
            cli_cmd_node_help(stdout);
            return CLI_EXIT_OK;
        } else if (cli_streq(a, "--quiet") || cli_streq(a, "-q")) {
            quiet = 1;
            continue;
        } else if (cli_streq(a, "--insecure")) {
            o.insecure = 1;
            continue;
        }
        if (!v) {
            cli_errf("option %s needs a value (see 'isoflow node --help')", a);
            return CLI_EXIT_USAGE;
        }
        i++;
        int r = cli_run_option(a, v, &o, &duration, &watch_dir, &stats_json);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r > 0)
            continue;
        if (cli_streq(a, "--flow")) {
            file = v;
        } else if (cli_streq(a, "--name")) {
            o.node = v;
        } else if (cli_streq(a, "--certs")) {
            o.certs = v;
        } else if (cli_streq(a, "--state")) {
            o.state_dir = v;
        } else if (cli_streq(a, "--trust")) {
            o.trust = v;
        } else if (cli_streq(a, "--spool-max")) {
            if (parse_bytes(v, &o.spool_max_bytes) != 0) {
                cli_errf("--spool-max: expected a size >= 64K (bytes, or "
                         "with K/M/G), got '%s'", v);
                return CLI_EXIT_USAGE;
            }
        } else if (cli_streq(a, "--spool-sync")) {
            o.spool_sync = cli_streq(v, "none")     ? FL_SYNC_NONE
                         : cli_streq(v, "batch")    ? FL_SYNC_BATCH
                         : cli_streq(v, "always")   ? FL_SYNC_ALWAYS : 0;
            if (!o.spool_sync) {
                cli_errf("--spool-sync: expected none, batch or always, got "
                         "'%s'", v);
                return CLI_EXIT_USAGE;
            }
        } else if (cli_streq(a, "--spool-full")) {
            if (cli_streq(v, "reject") || cli_streq(v, "drop-oldest")) {
                o.spool_full = cli_streq(v, "drop-oldest");
            } else {
                cli_errf("--spool-full: expected reject or drop-oldest, got "
                         "'%s'", v);
                return CLI_EXIT_USAGE;
            }
        } else {
            cli_errf("unknown option '%s' (see 'isoflow node --help')", a);
            return CLI_EXIT_USAGE;
        }
    }
    if (!file || !o.node) {
        cli_errf("node needs --flow FILE and --name NAME (see 'isoflow node "
                 "--help')");
        return CLI_EXIT_USAGE;
    }
    if (o.insecure && o.certs) {
        cli_errf("--insecure and --certs exclude each other");
        return CLI_EXIT_USAGE;
    }
    if (o.insecure)
        fprintf(stderr, "isoflow: WARNING: --insecure: links are plaintext "
                        "and unauthenticated\n");
    raise_nofile();
    s = fl_graph_load(file, &g, err, sizeof err);
    if (s != FL_OK) {
        fprintf(stderr, "%s\n", err[0] ? err : fl_status_msg(s));
        return CLI_EXIT_FAIL;
    }
    st = calloc(NODE_MAX_STAGES, sizeof *st);
    if (!st) {
        cli_errf("out of memory");
        goto out;
    }
    s = fl_runtime_new(g, &o, &rt, err, sizeof err);
    if (s != FL_OK) {
        cli_errf("cannot start node %s: %s", o.node,
                 err[0] ? err : fl_status_msg(s));
        goto out;
    }
    cli_catch_stop(0, 1);
    uint64_t t0 = cli_now_ns(), next = t0 + 1000000000ull;
    int tty = isatty(fileno(stdout));
    if (fl_runtime_start(rt) != FL_OK) {
        cli_errf("cannot start node %s (see the messages above)", o.node);
        goto out;
    }
    if (watch_dir) {
        uint32_t n = fl_runtime_stats(rt, st, NODE_MAX_STAGES);
        watch = cli_watch_new(watch_dir, rt, st,
                              n < NODE_MAX_STAGES ? n : NODE_MAX_STAGES);
        if (!watch) {
            cli_errf("out of memory");
            fl_runtime_stop(rt, 5000);
            goto out;
        }
    }
    uint64_t next_watch = t0;
    while (!cli_stop_requested) {
        struct timespec ts = {0, 50000000};
        uint64_t now = cli_now_ns();
        if (watch && now >= next_watch) {
            cli_watch_poll(watch);
            next_watch = now + 250000000ull;
        }
        if (duration > 0 && (double)(now - t0) / 1e9 >= duration)
            break;
        if (now >= next) {
            fl_run_stats tot;
            fl_node_stats ns;
            uint32_t n = fl_runtime_stats(rt, st, NODE_MAX_STAGES);
            fl_runtime_totals(rt, &tot);
            fl_runtime_node_stats(rt, &ns);
            if (!quiet)
                print_status(stdout, tty, o.node, (double)(now - t0) / 1e9,
                             st, n < NODE_MAX_STAGES ? n : NODE_MAX_STAGES,
                             &tot, &ns);
            next += 1000000000ull;
        }
        nanosleep(&ts, NULL);
    }
    if (!quiet && tty)
        fputc('\n', stdout);
    s = fl_runtime_stop(rt, 5000);
    {
        double el = (double)(cli_now_ns() - t0) / 1e9;
        fl_run_stats tot;
        fl_node_stats ns;
        uint32_t n = fl_runtime_stats(rt, st, NODE_MAX_STAGES);
        if (n > NODE_MAX_STAGES)
            n = NODE_MAX_STAGES;
        fl_runtime_totals(rt, &tot);
        fl_runtime_node_stats(rt, &ns);
        if (!quiet)
            printf("node %s stopped: %llu in, %llu out, %llu still spooled, "
                   "%llu actuations delivered\n", o.node,
                   (unsigned long long)ns.msgs_in,
                   (unsigned long long)ns.msgs_out,
                   (unsigned long long)ns.spooled,
                   (unsigned long long)tot.actuations);
        rc = CLI_EXIT_OK;
        if (stats_json && write_stats(stats_json, el, st, n, &tot, &ns) != 0)
            rc = CLI_EXIT_FAIL;
    }
    if (s != FL_OK) {
        cli_errf("node %s stopped before everything in flight was processed "
                 "(drain timeout)", o.node);
        rc = CLI_EXIT_FAIL;
    }
out:
    cli_watch_free(watch);
    fl_runtime_free(rt);
    fl_graph_free(g);
    free(st);
    return rc;
}
