/*
 * graph_fixture.c - hand-built graphs for the runtime tests
 * (graph_fixture.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "graph_fixture.h"

char *tg_sdup(const char *s)
{
    char *d = strdup(s);
    assert_non_null(d);
    return d;
}

fl_graph *tg_graph_new(const char *file, uint32_t max_stages)
{
    fl_graph *g = calloc(1, sizeof *g);
    assert_non_null(g);
    g->file = tg_sdup(file);
    g->stages = calloc(max_stages, sizeof *g->stages);
    assert_non_null(g->stages);
    return g;
}

fl__stage *tg_add_stage(fl_graph *g, const char *name, int layer,
                        const char *kind, const char *path,
                        uint32_t ninstances)
{
    fl__stage *s = &g->stages[g->nstages++];
    memset(s, 0, sizeof *s);
    s->name = tg_sdup(name);
    s->layer = (uint8_t)layer;
    s->group = -1;
    s->kind = tg_sdup(kind);
    s->path = path ? tg_sdup(path) : NULL;
    s->config = tg_sdup("");
    s->actuator_idx = -1;
    s->ninstances = ninstances;
    return s;
}

void tg_chain(fl_graph *g)
{
    if (g->nstages < 2)
        return;
    g->edges = calloc(g->nstages - 1, sizeof *g->edges);
    assert_non_null(g->edges);
    for (uint32_t i = 0; i + 1 < g->nstages; i++)
        g->edges[i] = (fl__edge){i, i + 1, 0, 0};
    g->nedges = g->nstages - 1;
}

void tg_demand_source(fl_graph *g, uint32_t stage, uint32_t credits,
                      uint64_t interval_ns)
{
    g->sources = calloc(1, sizeof *g->sources);
    assert_non_null(g->sources);
    g->sources[0].stage = stage;
    g->sources[0].mode = FL__MODE_DEMAND;
    g->sources[0].credits = credits;
    g->sources[0].interval_ns = interval_ns;
    g->nsources = 1;
}

void tg_devices(fl_graph *g, uint32_t n)
{
    g->ndevices = n;
    g->device_names = calloc(n + 1, sizeof *g->device_names);
    assert_non_null(g->device_names);
    for (uint32_t i = 0; i < n; i++) {
        char name[24];
        snprintf(name, sizeof name, "dev-%u", (unsigned)i);
        g->device_names[i] = tg_sdup(name);
    }
}

void tg_graph_free(fl_graph *g)
{
    for (uint32_t i = 0; i < g->nstages; i++) {
        free(g->stages[i].name);
        free(g->stages[i].kind);
        free(g->stages[i].path);
        free(g->stages[i].config);
    }
    for (uint32_t i = 0; i < g->nnodes; i++)
        free(g->nodes[i].name);
    for (uint32_t i = 0; i < g->ndevices; i++)
        free(g->device_names[i]);
    free(g->device_names);
    free(g->nodes);
    free(g->stages);
    free(g->edges);
    free(g->sources);
    free(g->file);
    free(g);
}

uint8_t *tg_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

void tg_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
