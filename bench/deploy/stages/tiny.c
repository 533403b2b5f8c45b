/*
 * tiny.c - the small stage of the live-update benchmark's smoke test
 * (bench/deploy/): forwards each reading's "co2" tagged with the code
 * version ("v":"v1").  XFORM_VERSION is the constant the harness rewrites.
 */
#include <isoflow/json.h>
#include <isoflow/stage.h>

#define XFORM_VERSION 1

/* Emits {"v":"vN","co2":X}; readings without "co2" are errors (-1). */
int stage_process(const uint8_t *msg, size_t len)
{
    double co2 = 0;
    char out[64], tag[8];
    if (if_json_num(msg, len, "co2", &co2) != 0)
        return -1;
    if_snprintf(tag, sizeof tag, "v%d", XFORM_VERSION);
    if_json_writer w;
    if_json_begin(&w, out, sizeof out);
    if_json_add_str(&w, "v", tag);
    if_json_add_num(&w, "co2", co2, 1);
    int n = if_json_end(&w);
    return n < 0 || if_emit(out, (size_t)n) < 0 ? -1 : 0;
}
