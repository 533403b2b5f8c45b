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
    int64_t high;    /* consecutive averages above the threshold */
    int64_t advised; /* 1 while an episode's advice has been sent */
} adv_room;

static adv_room rooms[MAX_ROOMS];
static uint32_t nrooms;
static int64_t threshold = 10000; /* tenths of a ppm */
static int64_t hysteresis = 1000;
static int64_t windows = 2;
static int64_t advised;

int stage_init(const char *config, size_t len)
{
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

/* Finds or creates the slot of a room; NULL when the table is full. */
static adv_room *room_slot(const char *name, size_t n)
{
    uint32_t h = su_hash(name, n) & (MAX_ROOMS - 1u);
    for (uint32_t i = 0; i < MAX_ROOMS; i++) {
        adv_room *r = &rooms[(h + i) & (MAX_ROOMS - 1u)];
        if (r->name[0] == '\0') {
            if (nrooms >= MAX_ROOMS / 2u)
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
    static const char *const keys[3] = {"room", "co2", "ts"};
    su_jval v[3];
    int64_t co2, ts = -1;
    adv_room *r;
    char act[128], adv[192], co2txt[24], cnt[24];
    su_buf a, d, c;
    int rc = 0;

    if (su_json_get((const char *)msg, len, keys, 3, v) < 0 ||
        v[0].kind != SU_J_STRING || v[0].n == 0 || v[0].n >= 32 ||
        v[1].kind != SU_J_NUMBER ||
        su_parse_fixed(v[1].p, v[1].n, 1, &co2) != v[1].n) {
        if_log(IF_LOG_WARN, "window_advisor: not a room average");
        return -1;
    }
    if (v[2].kind == SU_J_NUMBER &&
        su_parse_fixed(v[2].p, v[2].n, 0, &ts) != v[2].n)
        ts = -1;
    r = room_slot(v[0].p, v[0].n);
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

    su_init(&c, co2txt, sizeof co2txt - 1);
    su_put_fixed(&c, co2, 1);
    co2txt[c.len] = '\0';

    su_init(&a, act, sizeof act);
    su_put(&a, "{\"cmd\":\"blink\",\"room\":");
    su_put_jstr(&a, r->name, if_strlen(r->name));
    su_put(&a, ",\"co2\":");
    su_putn(&a, co2txt, c.len);
    su_putc(&a, '}');

    su_init(&d, adv, sizeof adv);
    su_put(&d, "{\"room\":");
    su_put_jstr(&d, r->name, if_strlen(r->name));
    su_put(&d, ",\"advice\":\"open window\",\"co2\":");
    su_putn(&d, co2txt, c.len);
    if (ts >= 0) {
        su_put(&d, ",\"ts\":");
        su_put_int(&d, ts);
    }
    su_putc(&d, '}');
    if (a.overflow || d.overflow)
        return -1;

    advised++;
    su_init(&c, cnt, sizeof cnt);
    su_put_int(&c, advised);
    if_kv_set("advised", cnt, c.len);
    if_log(IF_LOG_INFO, "%s: advice: open the window (co2 %s ppm for %d "
                        "windows)", r->name, co2txt, (int)r->high);
    if (if_actuate(act, a.len) < 0) {
        if_log(IF_LOG_WARN, "%s: no way back to the device for the "
                            "actuation", r->name);
        rc = -1;
    }
    if (if_emit(adv, d.len) < 0)
        rc = -1;
    return rc;
}
