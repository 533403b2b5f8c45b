/*
 * cleaner.c - the cleaner (an edge stage): forwards a room reading unchanged
 * when it is a JSON object with a string "room" and numbers "co2", "temp",
 * "hum" and "pres" inside physical bounds, and drops it otherwise (non-JSON,
 * a missing field, an impossible value such as co2 -1 or humidity 140 %).
 * Every drop is counted in kv `dropped` (decimal text) at once: drops are
 * rare (~1 %), so the kv write is off the common path.  With `log=1` each
 * drop is also logged (info level) with its reason; by default nothing is
 * formatted.
 *
 * Config (key=value, optional; the bounds are inclusive):
 *   co2_min=250 co2_max=10000  temp_min=-40 temp_max=85
 *   hum_min=0 hum_max=100      pres_min=800 pres_max=1200
 *   log=0                      1: log every drop with its reason
 *
 * Built twice: cleaner.wasm, and cleaner_v2.wasm (-DCLEANER_V2), which only
 * logs a line at init: the new version `isoflow demo` deploys live.
 */
#include <isoflow/stage.h>

#include "stage_util.h"

#define NFIELDS 4
/* The members read, in the order the sensor writes them ("seq" and "ts"
 * are listed so that each member is matched at the first try); the four
 * checked numbers in thousandths of their unit. */
static su_jkey keys[] = {
    SU_JKEY("room", -1), SU_JKEY("seq", -1), SU_JKEY("ts", -1),
    SU_JKEY("co2", 3),   SU_JKEY("temp", 3), SU_JKEY("hum", 3),
    SU_JKEY("pres", 3)};
enum { K_ROOM = 0, K_FIRST_NUM = 3, NKEYS = 7 };
static const char *const names[NFIELDS] = {"co2", "temp", "hum", "pres"};
static int64_t lo[NFIELDS] = {250000, -40000, 0, 800000};
static int64_t hi[NFIELDS] = {10000000, 85000, 100000, 1200000};
static int64_t dropped;
static int64_t log_drops;

int stage_init(const char *config, size_t len)
{
    su_jkeys_prepare(keys, NKEYS);
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
    if (su_cfg_fixed(config, len, "log", 0, &log_drops) < 0) {
        if_log(IF_LOG_ERROR, "cleaner: log must be 0 or 1");
        return -1;
    }
    n = if_kv_get("dropped", buf, sizeof buf);
    if (n <= 0 || (size_t)n > sizeof buf ||
        su_parse_fixed(buf, (size_t)n, 0, &dropped) != (size_t)n)
        dropped = 0;
#ifdef CLEANER_V2
    /* cleaner_v2.wasm, the version `isoflow demo` deploys live: the same
     * checks; it says so when it starts (the dropped count carries over). */
    if_log(IF_LOG_INFO, "cleaner v2 running (%lld readings dropped so far)",
           (long long)dropped);
#endif
    return 0;
}

/* Counts a dropped reading in kv (and logs it with log=1); returns 0 (a
 * drop is not an error). */
static int drop(const char *why, const char *field)
{
    char buf[24];
    dropped++;
    if_kv_set("dropped", buf, (size_t)(su_w_i64(buf, dropped) - buf));
    if (log_drops)
        if_log(IF_LOG_INFO, "cleaner: dropped a reading (%s%s)", why, field);
    return 0;
}

/* The general path: any JSON object (other layouts, whitespace, escapes,
 * exponents...), with the reason of a drop. */
static int process_any(const uint8_t *msg, size_t len)
{
    su_jval v[NKEYS];

    if (su_json_read((const char *)msg, len, keys, NKEYS, v) < 0)
        return drop("not a JSON object", "");
    if (v[K_ROOM].kind != SU_J_STRING || v[K_ROOM].n == 0)
        return drop("no room", "");
    for (int i = 0; i < NFIELDS; i++) {
        const su_jval *x = &v[K_FIRST_NUM + i];
        if (x->kind != SU_J_NUMBER)
            return drop("missing or not a number: ", names[i]);
        if (!x->num_ok)
            return drop("number out of range: ", names[i]);
        if (x->num < lo[i] || x->num > hi[i])
            return drop("impossible value: ", names[i]);
    }
    return if_emit(msg, len) < 0 ? -1 : 0;
}

int stage_process(const uint8_t *msg, size_t len)
{
    su_reading r;

    /* The sensor's own layout in straight-line code; the rest (and every
     * drop, for its reason) through the general reader. */
    if (!su_read_reading((const char *)msg, len, &r) || r.room_n == 0 ||
        r.v[0] < lo[0] || r.v[0] > hi[0] || r.v[1] < lo[1] ||
        r.v[1] > hi[1] || r.v[2] < lo[2] || r.v[2] > hi[2] ||
        r.v[3] < lo[3] || r.v[3] > hi[3])
        return process_any(msg, len);
    return if_emit(msg, len) < 0 ? -1 : 0;
}
