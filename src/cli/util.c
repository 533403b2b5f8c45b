/*
 * util.c - small helpers for the `isoflow` command: error printing, bounded
 * whole-file reading and a monotonic clock.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "flow.h"

void cli_errf(const char *fmt, ...)
{
    va_list ap;
    fputs("isoflow: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_streq(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

/*
 * Reads `path` in chunks into a growing buffer so that no size reported by
 * the file system is trusted (pipes, /proc files and growing files work).
 * Refuses files larger than `max`.  Returns 0 and hands the buffer to the
 * caller, or prints an error and returns -1 (nothing to free).
 */
int cli_read_file(const char *path, size_t max, uint8_t **data, size_t *len)
{
    FILE *f = NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    int rc = -1;

    *data = NULL;
    *len = 0;
    errno = 0;
    f = fopen(path, "rb");
    if (!f) {
        cli_errf("cannot read %s: %s", path,
                 errno ? strerror(errno) : "cannot open file");
        return -1;
    }
    {
        /* Fast refusal of big regular files; the loop below still enforces
         * the limit for everything else. */
        struct stat st;
        if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
            (uintmax_t)st.st_size > (uintmax_t)max) {
            cli_errf("cannot read %s: file is larger than %zu MiB", path,
                     max / (1024 * 1024));
            goto done;
        }
    }
    for (;;) {
        size_t got;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64 * 1024;
            uint8_t *nb;
            if (cap > max) {
                cli_errf("cannot read %s: file is larger than %zu MiB", path,
                         max / (1024 * 1024));
                goto done;
            }
            if (ncap > max + 1)
                ncap = max + 1; /* one extra byte detects "too large" */
            nb = realloc(buf, ncap);
            if (!nb) {
                cli_errf("cannot read %s: out of memory", path);
                goto done;
            }
            buf = nb;
            cap = ncap;
        }
        errno = 0;
        got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n > max) {
            cli_errf("cannot read %s: file is larger than %zu MiB", path,
                     max / (1024 * 1024));
            goto done;
        }
        if (got == 0) {
            if (ferror(f)) {
                cli_errf("cannot read %s: %s", path,
                         errno ? strerror(errno) : "read error");
                goto done;
            }
            break; /* end of file */
        }
    }
    if (!buf) { /* empty file: hand out a valid pointer anyway */
        buf = malloc(1);
        if (!buf) {
            cli_errf("cannot read %s: out of memory", path);
            goto done;
        }
    }
    *data = buf;
    *len = n;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    fclose(f);
    return rc;
}

volatile sig_atomic_t cli_stop_requested;

/* The handler only sets the flag; the main loop polls it. */
static void on_stop_signal(int sig)
{
    (void)sig;
    cli_stop_requested = 1;
}

void cli_catch_stop(int hup, int ignore_pipe)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (hup)
        sigaction(SIGHUP, &sa, NULL);
    if (ignore_pipe)
        signal(SIGPIPE, SIG_IGN);
    cli_stop_requested = 0;
}

uint64_t cli_now_ns(void)
{
    struct timespec ts;
#if defined(CLOCK_MONOTONIC)
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0)
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
    if (timespec_get(&ts, TIME_UTC) == TIME_UTC)
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return 0;
}

int cli_parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end;
    unsigned long v;
    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int cli_parse_pos_double(const char *s, double *out)
{
    char *end;
    double v;
    if (!s || !*s)
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end || !(v > 0) || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int cli_run_option(const char *a, const char *v, struct fl_run_opts *o,
                   double *duration, const char **watch_dir,
                   const char **stats_json)
{
    if (cli_streq(a, "--duration")) {
        if (cli_parse_pos_double(v, duration) != 0) {
            cli_errf("--duration: expected seconds > 0, got '%s'", v);
            return -1;
        }
    } else if (cli_streq(a, "--workers")) {
        if (cli_parse_u32(v, 1, 256, &o->workers) != 0) {
            cli_errf("--workers: expected 1..256, got '%s'", v);
            return -1;
        }
    } else if (cli_streq(a, "--time-scale")) {
        if (cli_parse_pos_double(v, &o->time_scale) != 0) {
            cli_errf("--time-scale: expected a number > 0, got '%s'", v);
            return -1;
        }
    } else if (cli_streq(a, "--dead-letter")) {
        o->dead_letter = v;
    } else if (cli_streq(a, "--watch")) {
        *watch_dir = v;
    } else if (cli_streq(a, "--stats-json")) {
        *stats_json = v;
    } else {
        return 0;
    }
    return 1;
}

/* See cli.h. */
int cli_load_topology(const char *path, struct fl_graph **g, char *err,
                      size_t errlen)
{
    uint8_t *text;
    size_t len;
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (cli_read_file(path, CLI_MAX_FILE_BYTES, &text, &len) != 0) {
        err[0] = '\0';
        return FL_IO;
    }
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    fl_status s = fl_graph_parse(path, (const char *)text, len, dir, 0, g,
                                 err, errlen);
    free(text);
    return s;
}
