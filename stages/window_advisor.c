/*
 * window_advisor.c - decides "open the window" (a cloud stage).  It reads
 * the per-room averages of aggregate.c; when a room's average CO2 is above
 * `threshold` for `windows` consecutive averages it
 *   - sends the actuation {"cmd":"blink","room":"room-03","co2":1234.5}
 *     back upstream (if_actuate: it reaches the LED of the room whose
 *     reading completed the average), and
 *   - emits the advice {"room":"room-03","advice":"open window",
 *     "co2":1234.5,"ts":1700000540000} downstream,
 * once per episode: the room is re-armed when its average falls below
 * threshold - hysteresis.  An average between the two ends a run of high
 * windows without re-arming.  Advice sent is counted in kv `advised`.
 *
 * Config: threshold=1000 (ppm)  windows=2  hysteresis=100 (ppm).
 */
#include <isoflow/stage.h>

#include "stage_util.h"

#define MAX_ROOMS 8192u /* power of two */

typedef struct adv_room {
    char name[32];   /* the room ("" when the slot is free) */
    uint32_t len;    /* bytes of name */
    int64_t high;    /* consecutive averages above the threshold */
    int64_t advised; /* 1 while an episode's advice has been sent */
} adv_room;

static adv_room rooms[MAX_ROOMS];
static uint32_t nrooms;
static int64_t threshold = 10000; /* tenths of a ppm */
static int64_t hysteresis = 1000;
static int64_t windows = 2;
static int64_t advised;

/* The members of an average, in the order aggregate.c writes them (all
 * listed so each is matched at the first try); co2 in tenths of a ppm. */
static su_jkey keys[] = {
    SU_JKEY("room", -1), SU_JKEY("n", -1),    SU_JKEY("ts", 0),
    SU_JKEY("co2", 1),   SU_JKEY("temp", -1), SU_JKEY("hum", -1),
    SU_JKEY("pres", -1), SU_JKEY("co2_max", -1)};
enum { K_ROOM = 0, K_TS = 2, K_CO2 = 3, NKEYS = 8 };

int stage_init(const char *config, size_t len)
{
    su_jkeys_prepare(keys, NKEYS);
    char buf[24];
    int n;
    if (su_cfg_fixed(config, len, "threshold", 1, &threshold) < 0 ||
        su_cfg_fixed(config, len, "hysteresis", 1, &hysteresis) < 0 ||
        su_cfg_fixed(config, len, "windows", 0, &windows) < 0 ||
        windows < 1 || threshold < 0 || hysteresis < 0) {
        if_log(IF_LOG_ERROR, "window_advisor: bad config (threshold=PPM "
                             "windows=N>=1 hysteresis=PPM)");
        return -1;
    }
    n = if_kv_get("advised", buf, sizeof buf);
    if (n <= 0 || (size_t)n > sizeof buf ||
        su_parse_fixed(buf, (size_t)n, 0, &advised) != (size_t)n)
        advised = 0;
    return 0;
}

/* Finds or creates the slot of a room (n < 32); NULL when the table is
 * full. */
static adv_room *room_slot(const char *name, size_t n)
{
    uint32_t h = su_hash(name, n) & (MAX_ROOMS - 1u);
    for (uint32_t i = 0; i < MAX_ROOMS; i++) {
        adv_room *r = &rooms[(h + i) & (MAX_ROOMS - 1u)];
        if (r->len == n && su_memeq(r->name, name, n))
            return r;
        if (r->len == 0) {
            if (nrooms >= MAX_ROOMS / 2u)
                return 0;
            su_copy(r->name, sizeof r->name, name, n);
            r->len = (uint32_t)n;
            nrooms++;
            return r;
        }
    }
    return 0;
}

/* Sends the advice for room r (once per episode, so off the per-message
 * path): the actuation back to the room's LED, the advice record
 * downstream, the kv count and an info log line.  Returns 0 or -1. */
static int advise(adv_room *r, int64_t co2, int64_t ts)
{
    /* Worst cases: 31-byte names of control bytes, 20-digit ts. */
    char act[256], adv[320], co2txt[24], cnt[24];
    char *a = act, *d = adv;
    size_t co2len = (size_t)(su_w_fixed(co2txt, co2, 1) - co2txt);
    int rc = 0;

    co2txt[co2len] = '\0';
    a = SU_W_LIT(a, "{\"cmd\":\"blink\",\"room\":");
    a = su_w_jstr(a, r->name, r->len);
    a = SU_W_LIT(a, ",\"co2\":");
    __builtin_memcpy(a, co2txt, co2len);
    a += co2len;
    *a++ = '}';

    d = SU_W_LIT(d, "{\"room\":");
    d = su_w_jstr(d, r->name, r->len);
    d = SU_W_LIT(d, ",\"advice\":\"open window\",\"co2\":");
    __builtin_memcpy(d, co2txt, co2len);
    d += co2len;
    if (ts >= 0) {
        d = SU_W_LIT(d, ",\"ts\":");
        d = su_w_i64(d, ts);
    }
    *d++ = '}';

    advised++;
    if_kv_set("advised", cnt, (size_t)(su_w_i64(cnt, advised) - cnt));
    if_log(IF_LOG_INFO, "%s: advice: open the window (co2 %s ppm for %d "
                        "windows)", r->name, co2txt, (int)r->high);
    if (if_actuate(act, (size_t)(a - act)) < 0) {
        if_log(IF_LOG_WARN, "%s: no way back to the device for the "
                            "actuation", r->name);
        rc = -1;
    }
    if (if_emit(adv, (size_t)(d - adv)) < 0)
        rc = -1;
    return rc;
}

/* Reads an average as aggregate.c writes it (members in order, no
 * whitespace or escapes, at most 3 decimals, integer n and ts) in
 * straight-line code: *room, *room_n, *co2 (tenths of a ppm), *ts.
 * Returns 1, or 0 when msg has another layout (su_json_read then reads it,
 * to the same values). */
static int read_average(const char *msg, size_t len, const char **room,
                        size_t *room_n, int64_t *co2, int64_t *ts)
{
    const char *p = msg, *last;
    int64_t skip;
    if (len < 2 || msg[len - 1] != '}')
        return 0;
    last = msg + len - 1;
    if (!SU_X_LIT(&p, last, "{\"room\":") || !su_x_str(&p, room, room_n) ||
        !SU_X_LIT(&p, last, ",\"n\":") || !su_x_skip_int(&p) ||
        !SU_X_LIT(&p, last, ",\"ts\":") || !su_x_num(&p, 0, ts) ||
        !SU_X_LIT(&p, last, ",\"co2\":") || !su_x_num(&p, 1, co2) ||
        !SU_X_LIT(&p, last, ",\"temp\":") || !su_x_num(&p, 3, &skip) ||
        !SU_X_LIT(&p, last, ",\"hum\":") || !su_x_num(&p, 3, &skip) ||
        !SU_X_LIT(&p, last, ",\"pres\":") || !su_x_num(&p, 3, &skip) ||
        !SU_X_LIT(&p, last, ",\"co2_") || !SU_X_LIT(&p, last, "max\":") ||
        !su_x_num(&p, 3, &skip))
        return 0;
    return p == last;
}

int stage_process(const uint8_t *msg, size_t len)
{
    const char *room;
    size_t room_n;
    int64_t co2, ts;
    adv_room *r;

    if (!read_average((const char *)msg, len, &room, &room_n, &co2, &ts) ||
        room_n == 0 || room_n >= 32) {
        su_jval v[NKEYS];
        if (su_json_read((const char *)msg, len, keys, NKEYS, v) < 0 ||
            v[K_ROOM].kind != SU_J_STRING || v[K_ROOM].n == 0 ||
            v[K_ROOM].n >= 32 || v[K_CO2].kind != SU_J_NUMBER ||
            !v[K_CO2].num_ok) {
            if_log(IF_LOG_WARN, "window_advisor: not a room average");
            return -1;
        }
        room = v[K_ROOM].p;
        room_n = v[K_ROOM].n;
        co2 = v[K_CO2].num;
        ts = v[K_TS].kind == SU_J_NUMBER && v[K_TS].num_ok ? v[K_TS].num
                                                          : -1;
    }
    r = room_slot(room, room_n);
    if (!r) {
        if_log(IF_LOG_ERROR, "window_advisor: more than %u rooms",
               MAX_ROOMS / 2u);
        return -1;
    }
    if (co2 > threshold) {
        r->high++;
    } else {
        r->high = 0;
        if (co2 < threshold - hysteresis)
            r->advised = 0;
    }
    if (r->high < windows || r->advised)
        return 0;
    r->advised = 1;
    return advise(r, co2, ts);
}
