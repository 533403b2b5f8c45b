/*
 * cmd_run.c - `isoflow run FILE.flow`: loads a flow, runs every layer of it
 * in this process, prints a live one-line status every second and, after
 * Ctrl-C/SIGTERM or --duration, a per-stage summary (and --stats-json).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "flow.h"

#define RUN_MAX_STAGES 1024
#define RUN_MAX_LAYERS 16


void cli_cmd_run_help(FILE *out)
{
    fprintf(out,
        "usage: isoflow run FILE.flow [--duration SEC] [--workers N]\n"
        "                   [--devices GROUP=N] [--time-scale X]\n"
        "                   [--watch DIR] [--dead-letter FILE] [--quiet] "
        "[--stats-json FILE]\n\n"
        "Runs every layer of a flow (device, edge, cloud) in this process.\n"
        "Prints a status line every second (elapsed time, messages per\n"
        "second per layer, actuations delivered, errors, end-to-end p99\n"
        "latency) and stops cleanly on Ctrl-C/SIGTERM or after --duration,\n"
        "draining what is in flight, then prints a table per stage.\n\n"
        "options:\n"
        "  --duration SEC     stop after SEC seconds (default: until Ctrl-C)\n"
        "  --workers N        worker threads (default: the number of cores)\n"
        "  --devices GROUP=N  run N devices in device group GROUP "
        "(repeatable)\n"
        "  --time-scale X     run source schedules X times faster "
        "(default 1)\n"
        "  --watch DIR        development mode: when DIR/STAGE.wasm changes,\n"
        "                     swap it into the running flow as the next\n"
        "                     version (no signature check; a version that\n"
        "                     traps at once is rolled back)\n"
        "  --dead-letter FILE where failed messages go "
        "(default deadletter.jsonl)\n"
        "  --queue N          messages per stage input queue (default 1024)\n"
        "  --quiet            no live status line\n"
        "  --stats-json FILE  write the final figures as JSON\n\n"
        "exit status: 0 after a clean stop, 1 when the flow does not load or\n"
        "start or the drain times out, 2 on a bad command line.\n"
        "example: isoflow run examples/home/home.flow --duration 10\n");
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* Rate of the busiest stage of each layer: the messages per second that
 * flow through that layer. */
static void print_status(FILE *out, int tty, double elapsed,
                         const fl_stage_stats *st, uint32_t n,
                         const fl_run_stats *tot)
{
    const char *layers[RUN_MAX_LAYERS];
    double rates[RUN_MAX_LAYERS];
    uint32_t nl = 0;
    uint64_t errors = 0;
    char line[512];
    int len;

    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        errors += st[i].errors;
        for (k = 0; k < nl; k++)
            if (strcmp(layers[k], st[i].layer) == 0)
                break;
        if (k == nl) {
            if (nl == RUN_MAX_LAYERS)
                continue;
            layers[nl] = st[i].layer;
            rates[nl++] = 0;
        }
        if (st[i].rate > rates[k])
            rates[k] = st[i].rate;
    }
    len = snprintf(line, sizeof line, "[%6.1fs]", elapsed);
    for (uint32_t k = 0; k < nl && len > 0 && (size_t)len < sizeof line; k++)
        len += snprintf(line + len, sizeof line - (size_t)len,
                        " %s %.0f msg/s |", layers[k], rates[k]);
    if (len > 0 && (size_t)len < sizeof line)
        snprintf(line + len, sizeof line - (size_t)len,
                 " actuations %llu | errors %llu | e2e p99 %.0f us",
                 (unsigned long long)tot->actuations,
                 (unsigned long long)errors, tot->e2e_p99_us);
    if (tty)
        fprintf(out, "\r%s\033[K", line);
    else
        fprintf(out, "%s\n", line);
    fflush(out);
}

static void print_summary(FILE *out, double elapsed, const fl_stage_stats *st,
                          uint32_t n, const fl_run_stats *tot)
{
    fprintf(out,
            "%-16s %-8s %10s %10s %10s %9s %9s %8s %7s %6s %8s %s\n",
            "stage", "layer", "in", "out", "rate/s", "p50(us)", "p99(us)",
            "dropped", "errors", "traps", "restarts", "stopped");
    for (uint32_t i = 0; i < n; i++) {
        uint64_t count = st[i].in ? st[i].in : st[i].out;
        fprintf(out,
                "%-16s %-8s %10llu %10llu %10.0f %9.1f %9.1f %8llu %7llu "
                "%6llu %8llu %s\n",
                st[i].name, st[i].layer, (unsigned long long)st[i].in,
                (unsigned long long)st[i].out,
                elapsed > 0 ? (double)count / elapsed : 0, st[i].p50_us,
                st[i].p99_us, (unsigned long long)st[i].dropped,
                (unsigned long long)st[i].errors,
                (unsigned long long)st[i].traps,
                (unsigned long long)st[i].restarts,
                st[i].stopped ? "yes" : "no");
    }
    fprintf(out,
            "total: %llu produced, %llu delivered, %llu actuations, %llu "
            "errors in %.1f s; end-to-end p50 %.1f us, p99 %.1f us\n",
            (unsigned long long)tot->produced,
            (unsigned long long)tot->delivered,
            (unsigned long long)tot->actuations,
            (unsigned long long)tot->errors, elapsed, tot->e2e_p50_us,
            tot->e2e_p99_us);
}

/* Writes the final figures as one JSON object; 0 on success. */
static int write_stats_json(const char *path, double elapsed,
                            const fl_stage_stats *st, uint32_t n,
                            const fl_run_stats *tot)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        cli_errf("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f,
            "{\"elapsed_s\":%.3f,\"produced\":%llu,\"delivered\":%llu,"
            "\"actuations\":%llu,\"errors\":%llu,\"e2e_p50_us\":%.2f,"
            "\"e2e_p99_us\":%.2f,\"stages\":[",
            elapsed, (unsigned long long)tot->produced,
            (unsigned long long)tot->delivered,
            (unsigned long long)tot->actuations,
            (unsigned long long)tot->errors, tot->e2e_p50_us,
            tot->e2e_p99_us);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t count = st[i].in ? st[i].in : st[i].out;
        fputs(i ? ",{\"name\":" : "{\"name\":", f);
        json_string(f, st[i].name);
        fputs(",\"layer\":", f);
        json_string(f, st[i].layer);
        fprintf(f,
                ",\"in\":%llu,\"out\":%llu,\"actuations\":%llu,"
                "\"dropped\":%llu,\"errors\":%llu,\"traps\":%llu,"
                "\"restarts\":%llu,\"queue_depth\":%u,\"stopped\":%s,"
                "\"rate\":%.2f,\"p50_us\":%.2f,\"p99_us\":%.2f}",
                (unsigned long long)st[i].in, (unsigned long long)st[i].out,
                (unsigned long long)st[i].actuations,
                (unsigned long long)st[i].dropped,
                (unsigned long long)st[i].errors,
                (unsigned long long)st[i].traps,
                (unsigned long long)st[i].restarts, st[i].queue_depth,
                st[i].stopped ? "true" : "false",
                elapsed > 0 ? (double)count / elapsed : 0, st[i].p50_us,
                st[i].p99_us);
    }
    fputs("]}\n", f);
    if (fclose(f) != 0) {
        cli_errf("cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/*
 * `isoflow run`: parses options, loads and resizes the graph, runs it
 * until a signal or the duration, stops (draining for at most 5 s) and
 * reports.  Returns a CLI_EXIT_* code.
 */
int cli_cmd_run(int argc, char **argv)
{
    const char *file = NULL, *stats_json = NULL, *watch_dir = NULL;
    cli_watch *watch = NULL;
    const char *devices[64];
    uint32_t ndevices = 0;
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
            cli_cmd_run_help(stdout);
            return CLI_EXIT_OK;
        } else if (cli_streq(a, "--quiet") || cli_streq(a, "-q")) {
            quiet = 1;
            continue;
        } else if (a[0] != '-') {
            if (file) {
                cli_errf("run takes one flow file (got '%s' and '%s')", file,
                         a);
                return CLI_EXIT_USAGE;
            }
            file = a;
            continue;
        }
        if (!v) {
            cli_errf("option %s needs a value (see 'isoflow run --help')", a);
            return CLI_EXIT_USAGE;
        }
        i++;
        int r = cli_run_option(a, v, &o, &duration, &watch_dir, &stats_json);
        if (r < 0)
            return CLI_EXIT_USAGE;
        if (r > 0)
            continue;
        if (cli_streq(a, "--queue")) {
            if (cli_parse_u32(v, 1, 1u << 24, &o.queue_capacity) != 0) {
                cli_errf("--queue: expected 1..16777216, got '%s'", v);
                return CLI_EXIT_USAGE;
            }
        } else if (cli_streq(a, "--devices")) {
            const char *eq = strchr(v, '=');
            uint32_t n;
            if (!eq || eq == v ||
                cli_parse_u32(eq + 1, 1, 1000000, &n) != 0) {
                cli_errf("--devices: expected GROUP=N (N 1..1000000), got "
                         "'%s'", v);
                return CLI_EXIT_USAGE;
            }
            if (ndevices == sizeof devices / sizeof devices[0]) {
                cli_errf("--devices: too many groups");
                return CLI_EXIT_USAGE;
            }
            devices[ndevices++] = v;
        } else {
            cli_errf("unknown option '%s' (see 'isoflow run --help')", a);
            return CLI_EXIT_USAGE;
        }
    }
    if (!file) {
        cli_errf("run needs a flow file (see 'isoflow run --help')");
        return CLI_EXIT_USAGE;
    }

    s = fl_graph_load(file, &g, err, sizeof err);
    if (s != FL_OK) {
        fprintf(stderr, "%s\n", err[0] ? err : fl_status_msg(s));
        return CLI_EXIT_FAIL;
    }
    for (uint32_t i = 0; i < ndevices; i++) {
        const char *eq = strchr(devices[i], '=');
        char group[128];
        uint32_t n = 0;
        snprintf(group, sizeof group, "%.*s", (int)(eq - devices[i]),
                 devices[i]);
        cli_parse_u32(eq + 1, 1, 1000000, &n);
        if (fl_graph_set_devices(g, group, n) != FL_OK) {
            cli_errf("--devices: no device group '%s' in %s", group, file);
            rc = CLI_EXIT_USAGE;
            goto out;
        }
    }
    st = calloc(RUN_MAX_STAGES, sizeof *st);
    if (!st) {
        cli_errf("out of memory");
        goto out;
    }
    s = fl_runtime_new(g, &o, &rt, err, sizeof err);
    if (s != FL_OK) {
        cli_errf("cannot start %s: %s", file, err[0] ? err : fl_status_msg(s));
        goto out;
    }

    cli_catch_stop(0, 0);

    uint64_t t0 = cli_now_ns(), next = t0 + 1000000000ull;
    int tty = isatty(fileno(stdout));
    if (fl_runtime_start(rt) != FL_OK) {
        cli_errf("cannot start the workers");
        goto out;
    }
    if (watch_dir) {
        uint32_t nst = fl_runtime_stats(rt, st, RUN_MAX_STAGES);
        watch = cli_watch_new(watch_dir, rt, st,
                              nst < RUN_MAX_STAGES ? nst : RUN_MAX_STAGES);
        if (!watch) {
            cli_errf("out of memory");
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
            uint32_t n = fl_runtime_stats(rt, st, RUN_MAX_STAGES);
            fl_runtime_totals(rt, &tot);
            if (!quiet)
                print_status(stdout, tty, (double)(now - t0) / 1e9, st,
                             n < RUN_MAX_STAGES ? n : RUN_MAX_STAGES, &tot);
            next += 1000000000ull;
        }
        nanosleep(&ts, NULL);
    }
    if (!quiet && tty)
        fputc('\n', stdout);
    s = fl_runtime_stop(rt, 5000);
    double elapsed = (double)(cli_now_ns() - t0) / 1e9;
    {
        fl_run_stats tot;
        uint32_t n = fl_runtime_stats(rt, st, RUN_MAX_STAGES);
        if (n > RUN_MAX_STAGES)
            n = RUN_MAX_STAGES;
        fl_runtime_totals(rt, &tot);
        print_summary(stdout, elapsed, st, n, &tot);
        rc = CLI_EXIT_OK;
        if (stats_json &&
            write_stats_json(stats_json, elapsed, st, n, &tot) != 0)
            rc = CLI_EXIT_FAIL;
    }
    if (s != FL_OK) {
        cli_errf("stopped before everything in flight was processed "
                 "(drain timeout)");
        rc = CLI_EXIT_FAIL;
    }
out:
    cli_watch_free(watch);
    fl_runtime_free(rt);
    fl_graph_free(g);
    free(st);
    return rc;
}
