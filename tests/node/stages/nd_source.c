/*
 * nd_source.c - test source for the node tests: emits one small JSON
 * message per produce call until the wall clock passes `stop_at=EPOCH_S`
 * (config), so that every node can settle before the test stops them.
 */
#include "isoflow/stage.h"

static long long limit = -1; /* epoch seconds; -1: no limit */
static long made;

int stage_init(const char *config, size_t len)
{
    const char *k = "stop_at";
    size_t i = 0;
    for (; i + 8 <= len; i++) {
        size_t j = 0;
        while (j < 7 && config[i + j] == k[j])
            j++;
        if (j == 7 && config[i + 7] == '=')
            break;
    }
    if (i + 8 <= len) {
        limit = 0;
        for (i += 8; i < len && config[i] >= '0' && config[i] <= '9'; i++)
            limit = limit * 10 + (config[i] - '0');
    }
    return 0;
}

int stage_produce(void)
{
    if (limit >= 0 && if_now_ns() / 1000000000 >= limit)
        return 0;
    made++;
    return if_emit("{\"r\":1}", 7);
}
