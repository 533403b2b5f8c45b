/*
 * src.c - the trivial source of the flow benchmarks (bench/flows/): each
 * produce() emits one small fixed JSON message, so the cost measured
 * downstream is the runtime's, not the stage's.
 */
#include <isoflow/stage.h>

static const char reading[] = "{\"room\":\"bench\",\"co2\":812.5,\"temp\":21.37}";

/* Emits the fixed reading once; returns 0, or -1 when the emit fails. */
int stage_produce(void)
{
    return if_emit(reading, sizeof reading - 1) < 0 ? -1 : 0;
}
