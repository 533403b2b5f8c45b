/*
 * lv_tag.c - device stage for the live-update tests: counts the messages
 * of its device in kv ("n", carried across swaps) and emits
 * {"v":TAG_VERSION,"n":COUNT}.  Variants (CFLAGS): -DTAG_VERSION=N tags
 * its output with N; -DTAG_TRAP traps on every message (before touching
 * kv); -DTAG_FAILINIT fails its init.
 */
#include "isoflow/stage.h"

#ifndef TAG_VERSION
#define TAG_VERSION 1
#endif

/* Appends the decimal digits of v to buf at *n. */
static void put_num(char *buf, int *n, long long v)
{
    char tmp[24];
    int k = 0;
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0 && k < 20);
    while (k > 0)
        buf[(*n)++] = tmp[--k];
}

int stage_init(const char *config, size_t len)
{
    (void)config, (void)len;
#ifdef TAG_FAILINIT
    if_log(IF_LOG_WARN, "tag: init fails on purpose");
    return -1;
#else
    return 0;
#endif
}

int stage_migrate(int32_t from_version)
{
    if_log(IF_LOG_INFO, "tag v%d: migrate from version %d", TAG_VERSION,
           (int)from_version);
    return 0;
}

int stage_process(const uint8_t *msg, size_t len)
{
    long long count = 0;
    char buf[64];
    int n = 0;
    (void)msg, (void)len;
#ifdef TAG_TRAP
    __builtin_trap();
#endif
    if (if_kv_get("n", &count, sizeof count) != (int)sizeof count)
        count = 0;
    count++;
    if (if_kv_set("n", &count, sizeof count) != 0)
        return -1;
    const char *a = "{\"v\":";
    while (*a)
        buf[n++] = *a++;
    put_num(buf, &n, TAG_VERSION);
    a = ",\"n\":";
    while (*a)
        buf[n++] = *a++;
    put_num(buf, &n, count);
    buf[n++] = '}';
    return if_emit(buf, (size_t)n);
}
