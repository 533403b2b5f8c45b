/*
 * fuzz_flow.c - libFuzzer target for the .flow parser and checker
 * (fl_graph_parse without opening stage files): every input must end in a
 * graph or a positioned error, never a crash, hang, leak or unbounded
 * allocation.  Accepted graphs are printed (to /dev/null) and resized.
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
    for (uint32_t i = 0; i < g->ngroups; i++)
        if (g->groups[i].layer == FL__LAYER_DEVICE) {
            (void)fl_graph_set_devices(g, g->groups[i].name, 3);
            break;
        }
    fl_graph_free(g);
    return 0;
}
