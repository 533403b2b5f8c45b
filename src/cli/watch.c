/*
 * watch.c - the development mode of `isoflow run --watch DIR` and
 * `isoflow node --watch DIR`: when DIR/<stage>.wasm (or DIR/<stage>.so for a
 * native stage) changes (size or modification time, stable over two
 * polls), that stage's new code is swapped into the running flow as the
 * next version, without a signature; swaps, refusals and automatic
 * rollbacks are logged.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "flow.h"

typedef struct watched {
    const char *stage;        /* borrowed from the graph */
    char path[1024];          /* DIR/<stage>.wasm, else DIR/<stage>.so */
    char wasm[1024], so[1024];
    int seen;                 /* file existed at the last poll */
    long long mtime_ns, size; /* as seen at the last poll */
    int pending;              /* changed at the last poll: swap when stable */
    uint32_t rollbacks;       /* rollbacks already reported */
} watched;

struct cli_watch {
    fl_runtime *rt;
    uint32_t n;
    watched *w;
};

static int file_sig(const char *path, long long *mtime_ns, long long *size)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return 0;
    *mtime_ns = (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    *size = (long long)st.st_size;
    return 1;
}

/* The stage's watched file: its .wasm when present, else its .so. */
static int stage_sig(watched *w, long long *mtime_ns, long long *size)
{
    if (file_sig(w->wasm, mtime_ns, size)) {
        snprintf(w->path, sizeof w->path, "%s", w->wasm);
        return 1;
    }
    snprintf(w->path, sizeof w->path, "%s", w->so);
    return file_sig(w->so, mtime_ns, size);
}

cli_watch *cli_watch_new(const char *dir, fl_runtime *rt,
                         const fl_stage_stats *st, uint32_t n)
{
    cli_watch *cw = calloc(1, sizeof *cw);
    if (!cw)
        return NULL;
    cw->w = calloc(n ? n : 1, sizeof *cw->w);
    if (!cw->w) {
        free(cw);
        return NULL;
    }
    cw->rt = rt;
    cw->n = n;
    for (uint32_t i = 0; i < n; i++) {
        watched *w = &cw->w[i];
        fl_swap_status ss;
        w->stage = st[i].name;
        snprintf(w->wasm, sizeof w->wasm, "%s/%s.wasm", dir, st[i].name);
        snprintf(w->so, sizeof w->so, "%s/%s.so", dir, st[i].name);
        w->seen = stage_sig(w, &w->mtime_ns, &w->size);
        if (fl_runtime_swap_status(rt, w->stage, &ss) == FL_OK)
            w->rollbacks = ss.rollbacks;
    }
    fprintf(stderr,
            "isoflow: warning: --watch %s: development mode, stage code is "
            "swapped in WITHOUT a signature check\n", dir);
    return cw;
}

/* Swaps stage w's file in as the next version and logs the outcome. */
static void swap_in(cli_watch *cw, watched *w)
{
    uint8_t *data = NULL;
    size_t len = 0;
    fl_swap_status ss;
    fl_swap_result res;
    uint32_t next;

    if (cli_read_file(w->path, CLI_MAX_FILE_BYTES, &data, &len) != 0)
        return; /* cli_read_file said why */
    memset(&ss, 0, sizeof ss);
    fl_runtime_swap_status(cw->rt, w->stage, &ss);
    next = (ss.version > ss.last_version ? ss.version : ss.last_version) + 1;
    if (fl_runtime_swap(cw->rt, w->stage, data, len, next, &res) == FL_OK)
        fprintf(stderr,
                "isoflow: watch: stage '%s' now runs version %u (%zu bytes, "
                "%u instances, paused %.1f ms)\n",
                w->stage, res.version, len, res.instances,
                res.pause_us / 1000.0);
    else
        fprintf(stderr,
                "isoflow: watch: stage '%s': version %u refused: %s "
                "(version %u keeps running)\n",
                w->stage, next, res.reason[0] ? res.reason : "unknown reason",
                res.version);
    free(data);
}

void cli_watch_poll(cli_watch *cw)
{
    for (uint32_t i = 0; i < cw->n; i++) {
        watched *w = &cw->w[i];
        long long m = 0, sz = 0;
        fl_swap_status ss;
        int seen = stage_sig(w, &m, &sz);
        int changed = seen && (!w->seen || m != w->mtime_ns || sz != w->size);

        if (changed) {
            w->pending = 1; /* wait one poll for the writer to finish */
        } else if (seen && w->pending) {
            w->pending = 0;
            swap_in(cw, w);
        }
        w->seen = seen;
        w->mtime_ns = m;
        w->size = sz;
        if (fl_runtime_swap_status(cw->rt, w->stage, &ss) == FL_OK &&
            ss.rollbacks > w->rollbacks) {
            w->rollbacks = ss.rollbacks;
            fprintf(stderr,
                    "isoflow: watch: stage '%s' rolled back to version %u: "
                    "%s\n", w->stage, ss.version, ss.reason);
        }
    }
}

void cli_watch_free(cli_watch *cw)
{
    if (!cw)
        return;
    free(cw->w);
    free(cw);
}
