/*
 * lv_edge.c - edge stage for the live-update tests: forwards each JSON
 * object message with ,"e":EDGE_VERSION added before its closing brace, so
 * the cloud sink shows which edge version handled it (-DEDGE_VERSION=N).
 */
#include "isoflow/stage.h"

#ifndef EDGE_VERSION
#define EDGE_VERSION 1
#endif

int stage_process(const uint8_t *msg, size_t len)
{
    char buf[256];
    size_t n;
    if (len < 2 || len > sizeof buf - 16 || msg[len - 1] != '}')
        return if_emit(msg, len);
    for (n = 0; n < len - 1; n++)
        buf[n] = (char)msg[n];
    const char *a = ",\"e\":";
    while (*a)
        buf[n++] = *a++;
    buf[n++] = (char)('0' + EDGE_VERSION % 10);
    buf[n++] = '}';
    return if_emit(buf, n);
}
