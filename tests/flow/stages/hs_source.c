/*
 * hs_source.c - a test stage that defines only stage_produce (a source):
 * hosting it where stage_process is needed must fail the check.
 */
#include "isoflow/stage.h"

int stage_produce(void) { return if_emit("tick", 4); }
