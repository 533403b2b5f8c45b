/*
 * nd_led.c - test actuator for the node tests: logs every actuation it
 * receives as "act DEVICE SEQ" (the tests count these lines).
 */
#include "isoflow/stage.h"

int stage_process(const uint8_t *msg, size_t len)
{
    (void)msg, (void)len;
    return 0;
}

int stage_actuation(const uint8_t *msg, size_t len)
{
    char dev[64], text[32];
    size_t i;
    if (if_meta_str(IF_META_INSTANCE, dev, sizeof dev) < 0)
        dev[0] = '\0';
    for (i = 0; i < len && i < sizeof text - 1; i++)
        text[i] = (char)msg[i];
    text[i] = '\0';
    if_log(IF_LOG_WARN, "act %s %s", dev, text);
    return 0;
}
