/*
 * cleaner.c - the cleaner (an edge stage): forwards a room reading unchanged
 * when it is a JSON object with a string "room" and numbers "co2", "temp",
 * "hum" and "pres" inside physical bounds, and drops it otherwise (non-JSON,
 * a missing field, an impossible value such as co2 -1 or humidity 140 %).
 * Drops are counted in kv `dropped` (decimal text) and logged at debug
 * level with the reason.
 *
 * Config (key=value, optional; the bounds are inclusive):
 *   co2_min=250 co2_max=10000  temp_min=-40 temp_max=85
 *   hum_min=0 hum_max=100      pres_min=800 pres_max=1200
 */
#include <isoflow/stage.h>

#include "stage_util.h"

#define NFIELDS 4
/* Field names and their bounds in thousandths of the unit. */
static const char *const names[NFIELDS] = {"co2", "temp", "hum", "pres"};
static int64_t lo[NFIELDS] = {250000, -40000, 0, 800000};
static int64_t hi[NFIELDS] = {10000000, 85000, 100000, 1200000};
static int64_t dropped;

int stage_init(const char *config, size_t len)
{
    static const char *const kmin[NFIELDS] = {"co2_min", "temp_min",
                                              "hum_min", "pres_min"};
    static const char *const kmax[NFIELDS] = {"co2_max", "temp_max",
                                              "hum_max", "pres_max"};
    char buf[24];
    int n;

    for (int i = 0; i < NFIELDS; i++) {
        if (su_cfg_fixed(config, len, kmin[i], 3, &lo[i]) < 0 ||
            su_cfg_fixed(config, len, kmax[i], 3, &hi[i]) < 0) {
            if_log(IF_LOG_ERROR, "cleaner: bad bound for %s", names[i]);
            return -1;
        }
    }
    n = if_kv_get("dropped", buf, sizeof buf);
    if (n <= 0 || (size_t)n > sizeof buf ||
        su_parse_fixed(buf, (size_t)n, 0, &dropped) != (size_t)n)
        dropped = 0;
    return 0;
}

/* Counts and logs a dropped reading; returns 0 (a drop is not an error). */
static int drop(const char *why, const char *field)
{
    char buf[24];
    su_buf b;
    dropped++;
    su_init(&b, buf, sizeof buf);
    su_put_int(&b, dropped);
    if_kv_set("dropped", buf, b.len);
    if_log(IF_LOG_DEBUG, "cleaner: dropped a reading (%s%s)", why, field);
    return 0;
}

int stage_process(const uint8_t *msg, size_t len)
{
    static const char *const keys[NFIELDS + 1] = {"co2", "temp", "hum",
                                                  "pres", "room"};
    su_jval v[NFIELDS + 1];

    if (su_json_get((const char *)msg, len, keys, NFIELDS + 1, v) < 0)
        return drop("not a JSON object", "");
    if (v[NFIELDS].kind != SU_J_STRING || v[NFIELDS].n == 0)
        return drop("no room", "");
    for (int i = 0; i < NFIELDS; i++) {
        int64_t x;
        if (v[i].kind != SU_J_NUMBER)
            return drop("missing or not a number: ", names[i]);
        if (su_parse_fixed(v[i].p, v[i].n, 3, &x) != v[i].n)
            return drop("number out of range: ", names[i]);
        if (x < lo[i] || x > hi[i])
            return drop("impossible value: ", names[i]);
    }
    return if_emit(msg, len) < 0 ? -1 : 0;
}
