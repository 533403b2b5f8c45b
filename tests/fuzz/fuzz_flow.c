/*
 * fuzz_flow.c - libFuzzer target for the .flow parser and checker
 * (fl_graph_parse without opening stage files): every input must end in a
 * graph or a positioned error, never a crash, hang, leak or unbounded
 * allocation.  Accepted graphs are printed (to /dev/null) and resized,
 * and the configuration of every builtin stage (`sample 10`, `filter "co2 >
 * 1000"`, `rate 100/s`, `delay 5ms`, `jsonl ... buffered`...) goes through
 * its host's check(), the parser the runtime uses: it must accept or give a
 * message naming the stage, never crash.  (wasm/native stages are skipped:
 * their check opens files.)
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "flow_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    fl_graph *g = NULL;
    char err[1024];
    fl_status st;

    st = fl_graph_parse("fuzz.flow", (const char *)data, size, "/base", 0,
                        &g, err, sizeof err);
    if (st != FL_OK) {
        /* Every error is a positioned, NUL-terminated message. */
        if (strncmp(err, "fuzz.flow", 9) != 0)
            __builtin_trap();
        return 0;
    }
    if (devnull == NULL)
        devnull = fopen("/dev/null", "w");
    if (devnull != NULL)
        fl_graph_print(g, devnull);
    for (uint32_t i = 0; i < g->nstages; i++) {
        const fl__stage *d = &g->stages[i];
        const fl__stage_ops *ops;
        if (strcmp(d->kind, "wasm") == 0 || strcmp(d->kind, "native") == 0)
            continue;
        ops = fl__stage_ops_find(d->kind);
        if (ops == NULL || ops->check == NULL)
            continue;
        err[0] = '\0';
        if (ops->check(d, err, sizeof err) != FL_OK &&
            (strncmp(err, "stage '", 7) != 0 ||
             strncmp(err + 7, d->name, strlen(d->name)) != 0))
            __builtin_trap(); /* a refusal names the stage */
    }
    for (uint32_t i = 0; i < g->ngroups; i++)
        if (g->groups[i].layer == FL__LAYER_DEVICE) {
            (void)fl_graph_set_devices(g, g->groups[i].name, 3);
            break;
        }
    fl_graph_free(g);
    return 0;
}
