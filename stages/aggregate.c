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
    char name[32];  /* the room as it was in the reading (escapes as they
                       are), NUL-terminated ("" when the slot is free) */
    uint32_t len;   /* bytes of name */
    int64_t n;      /* readings in the current window */
    int64_t sum[4]; /* co2, temp, hum, pres sums, thousandths of the unit */
    int64_t co2_max;/* thousandths of a ppm */
    int64_t ts;     /* "ts" of the last reading, -1 when it had none */
} agg_room;

static agg_room rooms[MAX_ROOMS];
static uint32_t nrooms;
static int64_t window = 10;

/* The members read, in the order the sensor writes them; the four averaged
 * numbers in thousandths of their unit, "ts" in whole milliseconds. */
static su_jkey keys[] = {
    SU_JKEY("room", -1), SU_JKEY("seq", -1), SU_JKEY("ts", 0),
    SU_JKEY("co2", 3),   SU_JKEY("temp", 3), SU_JKEY("hum", 3),
    SU_JKEY("pres", 3)};
enum { K_ROOM = 0, K_TS = 2, K_FIRST_NUM = 3, NKEYS = 7 };

int stage_init(const char *config, size_t len)
{
    su_jkeys_prepare(keys, NKEYS);
    if (su_cfg_fixed(config, len, "window", 0, &window) < 0 || window < 1 ||
        window > 1000000) {
        if_log(IF_LOG_ERROR, "aggregate: window must be 1..1000000");
        return -1;
    }
    return 0;
}

/* Finds or creates the slot of a room (n < 32); NULL when the table is
 * full. */
static agg_room *room_slot(const char *name, size_t n)
{
    uint32_t h = su_hash(name, n) & (MAX_ROOMS - 1u);
    for (uint32_t i = 0; i < MAX_ROOMS; i++) {
        agg_room *r = &rooms[(h + i) & (MAX_ROOMS - 1u)];
        if (r->len == n && su_memeq(r->name, name, n))
            return r;
        if (r->len == 0) {
            if (nrooms >= MAX_ROOMS / 2u) /* keep probes short */
                return 0;
            su_copy(r->name, sizeof r->name, name, n);
            r->len = (uint32_t)n;
            nrooms++;
            return r;
        }
    }
    return 0;
}

/* Appends the average of a room's window to w (see the top of the file);
 * at most 386 bytes (a 31-byte name of control bytes, 20-digit ts). */
static char *put_average(char *w, const agg_room *r)
{
    /* Output resolution of each field: divisor from thousandths. */
    static const int64_t div[4] = {100, 10, 100, 100};
    static const unsigned dec[4] = {1, 2, 1, 1};
    w = SU_W_LIT(w, "{\"room\":");
    w = su_w_jstr(w, r->name, r->len);
    w = SU_W_LIT(w, ",\"n\":");
    w = su_w_i64(w, r->n);
    if (r->ts >= 0) {
        w = SU_W_LIT(w, ",\"ts\":");
        w = su_w_i64(w, r->ts);
    }
    w = SU_W_LIT(w, ",\"co2\":");
    w = su_w_fixed(w, su_div_round(r->sum[0], r->n * div[0]), dec[0]);
    w = SU_W_LIT(w, ",\"temp\":");
    w = su_w_fixed(w, su_div_round(r->sum[1], r->n * div[1]), dec[1]);
    w = SU_W_LIT(w, ",\"hum\":");
    w = su_w_fixed(w, su_div_round(r->sum[2], r->n * div[2]), dec[2]);
    w = SU_W_LIT(w, ",\"pres\":");
    w = su_w_fixed(w, su_div_round(r->sum[3], r->n * div[3]), dec[3]);
    w = SU_W_LIT(w, ",\"co2_max\":");
    w = su_w_fixed(w, su_div_round(r->co2_max, 100), 1);
    *w++ = '}';
    return w;
}

/* Reads a reading in any JSON layout (the general reader) into *r;
 * returns 0, or -1 (logged) when it is not a room reading. */
static int read_any(const uint8_t *msg, size_t len, su_reading *r)
{
    su_jval v[NKEYS];
    const su_jval *room = &v[K_ROOM], *x = &v[K_FIRST_NUM];

    if (su_json_read((const char *)msg, len, keys, NKEYS, v) < 0 ||
        room->kind != SU_J_STRING || room->n == 0 || room->n >= 32) {
        if_log(IF_LOG_WARN, "aggregate: not a room reading");
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        if (x[i].kind != SU_J_NUMBER || !x[i].num_ok) {
            if_log(IF_LOG_WARN, "aggregate: reading without %s",
                   keys[K_FIRST_NUM + i].name);
            return -1;
        }
        r->v[i] = x[i].num;
    }
    r->room = room->p;
    r->room_n = room->n;
    r->ts = v[K_TS].kind == SU_J_NUMBER && v[K_TS].num_ok ? v[K_TS].num : -1;
    return 0;
}

int stage_process(const uint8_t *msg, size_t len)
{
    su_reading x;
    agg_room *r;
    char out[512]; /* the worst case of put_average is 386 */

    /* The sensor's own layout in straight-line code, else the general
     * reader (same values). */
    if ((!su_read_reading((const char *)msg, len, &x) || x.room_n == 0 ||
         x.room_n >= 32) &&
        read_any(msg, len, &x) < 0)
        return -1;
    r = room_slot(x.room, x.room_n);
    if (!r) {
        if_log(IF_LOG_ERROR, "aggregate: more than %u rooms",
               MAX_ROOMS / 2u);
        return -1;
    }
    r->sum[0] += x.v[0];
    r->sum[1] += x.v[1];
    r->sum[2] += x.v[2];
    r->sum[3] += x.v[3];
    if (r->n == 0 || x.v[0] > r->co2_max)
        r->co2_max = x.v[0];
    r->n++;
    r->ts = x.ts;
    if (r->n < window)
        return 0;

    len = (size_t)(put_average(out, r) - out);
    r->n = 0;
    r->sum[0] = r->sum[1] = r->sum[2] = r->sum[3] = 0;
    return if_emit(out, len) < 0 ? -1 : 0;
}
