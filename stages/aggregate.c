/*
 * aggregate.c - per-room averages (an edge stage): one instance serves every
 * room, keeping a running window per room (a fixed hash table keyed by the
 * reading's "room" field, up to MAX_ROOMS rooms).  When a room's window of
 * N readings fills it emits
 *   {"room":"room-03","n":10,"ts":1700000540000,"co2":812.5,"temp":21.37,
 *    "hum":44.1,"pres":1013.2,"co2_max":903.1}
 * (averages rounded half away from zero to the readings' resolution; "ts"
 * is the last reading's) and starts the next window.  The emitted message
 * inherits the metadata of the reading that completed the window, so its
 * origin is that room's device and an actuation caused by it goes back
 * there.  Readings without the expected fields are an error (the cleaner
 * runs before).  The windows live in the instance: a trap-restart starts
 * them afresh.
 *
 * Config: window=10 (readings per average, 1..1000000).
 */
#include <isoflow/stage.h>

#include "stage_util.h"

#define MAX_ROOMS 8192u /* power of two */

typedef struct agg_room {
    char name[32];  /* the room, NUL-terminated ("" when the slot is free) */
    int64_t n;      /* readings in the current window */
    int64_t sum[4]; /* co2, temp, hum, pres sums, thousandths of the unit */
    int64_t co2_max;/* thousandths of a ppm */
    int64_t ts;     /* "ts" of the last reading, -1 when it had none */
} agg_room;

static agg_room rooms[MAX_ROOMS];
static uint32_t nrooms;
static int64_t window = 10;

int stage_init(const char *config, size_t len)
{
    if (su_cfg_fixed(config, len, "window", 0, &window) < 0 || window < 1 ||
        window > 1000000) {
        if_log(IF_LOG_ERROR, "aggregate: window must be 1..1000000");
        return -1;
    }
    return 0;
}

/* Finds or creates the slot of a room; NULL when the table is full. */
static agg_room *room_slot(const char *name, size_t n)
{
    uint32_t h = su_hash(name, n) & (MAX_ROOMS - 1u);
    for (uint32_t i = 0; i < MAX_ROOMS; i++) {
        agg_room *r = &rooms[(h + i) & (MAX_ROOMS - 1u)];
        if (r->name[0] == '\0') {
            if (nrooms >= MAX_ROOMS / 2u) /* keep probes short */
                return 0;
            su_copy(r->name, sizeof r->name, name, n);
            nrooms++;
            return r;
        }
        if (su_eq(name, n, r->name))
            return r;
    }
    return 0;
}

int stage_process(const uint8_t *msg, size_t len)
{
    static const char *const keys[6] = {"co2", "temp", "hum", "pres",
                                        "room", "ts"};
    /* Output resolution of each field: divisor from thousandths. */
    static const int64_t div[4] = {100, 10, 100, 100};
    static const int dec[4] = {1, 2, 1, 1};
    static const char *const out_names[4] = {",\"co2\":", ",\"temp\":",
                                             ",\"hum\":", ",\"pres\":"};
    su_jval v[6];
    int64_t x[4], ts = -1;
    agg_room *r;
    char out[320];
    su_buf b;

    if (su_json_get((const char *)msg, len, keys, 6, v) < 0 ||
        v[4].kind != SU_J_STRING || v[4].n == 0 || v[4].n >= 32) {
        if_log(IF_LOG_WARN, "aggregate: not a room reading");
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        if (v[i].kind != SU_J_NUMBER ||
            su_parse_fixed(v[i].p, v[i].n, 3, &x[i]) != v[i].n) {
            if_log(IF_LOG_WARN, "aggregate: reading without %s",
                   keys[i]);
            return -1;
        }
    }
    if (v[5].kind == SU_J_NUMBER &&
        su_parse_fixed(v[5].p, v[5].n, 0, &ts) != v[5].n)
        ts = -1;
    r = room_slot(v[4].p, v[4].n);
    if (!r) {
        if_log(IF_LOG_ERROR, "aggregate: more than %u rooms",
               MAX_ROOMS / 2u);
        return -1;
    }
    for (int i = 0; i < 4; i++)
        r->sum[i] += x[i];
    if (r->n == 0 || x[0] > r->co2_max)
        r->co2_max = x[0];
    r->n++;
    r->ts = ts;
    if (r->n < window)
        return 0;

    su_init(&b, out, sizeof out);
    su_put(&b, "{\"room\":");
    su_put_jstr(&b, r->name, if_strlen(r->name));
    su_put(&b, ",\"n\":");
    su_put_int(&b, r->n);
    if (r->ts >= 0) {
        su_put(&b, ",\"ts\":");
        su_put_int(&b, r->ts);
    }
    for (int i = 0; i < 4; i++) {
        su_put(&b, out_names[i]);
        su_put_fixed(&b, su_div_round(r->sum[i], r->n * div[i]), dec[i]);
    }
    su_put(&b, ",\"co2_max\":");
    su_put_fixed(&b, su_div_round(r->co2_max, 100), 1);
    su_putc(&b, '}');
    r->n = 0;
    for (int i = 0; i < 4; i++)
        r->sum[i] = 0;
    if (b.overflow)
        return -1;
    return if_emit(out, b.len) < 0 ? -1 : 0;
}
