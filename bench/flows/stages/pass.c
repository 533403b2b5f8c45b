/*
 * pass.c - the trivial stage of the flow benchmarks (bench/flows/): emits
 * every message it receives unchanged, so a pipeline of these measures the
 * runtime's own per-message cost (queues, host calls, Wasm calls).
 */
#include <isoflow/stage.h>

/* Forwards the message as is; returns 0, or -1 when the emit fails (the
 * runtime then counts an error and dead-letters the message). */
int stage_process(const uint8_t *msg, size_t len)
{
    return if_emit(msg, len) < 0 ? -1 : 0;
}
