/*
 * nd_cloud.c - test stage for the node tests: forwards every message and
 * sends an actuation carrying the message's seq back to its device for
 * every message whose seq is a multiple of 3.
 */
#include "isoflow/stage.h"

int stage_process(const uint8_t *msg, size_t len)
{
    int64_t seq = if_meta(IF_META_SEQ);
    if (seq % 3 == 0) {
        char buf[24];
        int n = 0;
        char tmp[24];
        int k = 0;
        do {
            tmp[k++] = (char)('0' + seq % 10);
            seq /= 10;
        } while (seq > 0 && k < 20);
        while (k > 0)
            buf[n++] = tmp[--k];
        if_actuate(buf, (size_t)n);
    }
    return if_emit(msg, len);
}
