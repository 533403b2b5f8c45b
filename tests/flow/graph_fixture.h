/*
 * graph_fixture.h - builds small checked graphs by hand for the runtime
 * tests that need stages the .flow language cannot name (test-only stage
 * kinds): test_swap.c, test_ctl.c.  Prefix tg_.  Every allocation failure
 * fails the running cmocka test.
 */
#ifndef ISOFLOW_TESTS_GRAPH_FIXTURE_H
#define ISOFLOW_TESTS_GRAPH_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "flow_int.h"

/* A copy of s (owned by the graph it goes into). */
char *tg_sdup(const char *s);

/* An empty graph named `file` with room for `max_stages` stages; free it
 * with tg_graph_free. */
fl_graph *tg_graph_new(const char *file, uint32_t max_stages);

/* Appends a stage (config "", no group, no actuator); returns it so the
 * caller can set need_caps and the like. */
fl__stage *tg_add_stage(fl_graph *g, const char *name, int layer,
                        const char *kind, const char *path,
                        uint32_t ninstances);

/* Links the stages in order: 0 -> 1 -> ... -> nstages-1. */
void tg_chain(fl_graph *g);

/* Stage `stage` as the graph's one source: demand mode with `credits`,
 * producing every interval_ns (0: as fast as credits allow). */
void tg_demand_source(fl_graph *g, uint32_t stage, uint32_t credits,
                      uint64_t interval_ns);

/* Names devices "dev-0" ... "dev-(n-1)". */
void tg_devices(fl_graph *g, uint32_t n);

/* Frees a graph made with these functions. */
void tg_graph_free(fl_graph *g);

/* The bytes of file `path` (malloc'ed; the caller frees). */
uint8_t *tg_slurp(const char *path, size_t *len);

void tg_sleep_ms(unsigned ms);

#endif
