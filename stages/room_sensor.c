/*
 * room_sensor.c - a simulated room climate sensor (a device source stage):
 * every produce() advances a small physical model of one room by one
 * simulated step and emits one JSON reading
 *   {"room":"room-03","seq":17,"ts":1700000960000,"co2":812.5,
 *    "temp":21.37,"hum":44.1,"pres":1013.2}
 * CO2 rises with the people in the room and falls with ventilation (an open
 * window); temperature, humidity and pressure drift slowly with noise.  All
 * of it is integer fixed-point arithmetic driven by xorshift PRNGs seeded
 * from the configured seed and the device index, so a run is reproducible
 * and the .wasm and .so builds emit identical bytes.  About 1% of readings
 * (config `glitch`) carry an impossible value for the cleaner to drop.
 *
 * Config (space-separated key=value, all optional):
 *   seed=42        simulation seed (with the device index: one room each)
 *   count=0        stop after this many readings (0: never)
 *   step=60        simulated seconds per reading
 *   t0=1700000000  simulated time of the first reading (Unix seconds);
 *                  the reading's "ts" is in milliseconds of this clock
 *   co2_base=420   outdoor CO2, ppm
 *   occupancy=3    most people a room can hold
 *   glitch=10      impossible readings per thousand
 *   save=0         checkpoint the simulation in kv every N readings, so a
 *                  restarted instance continues (0: never)
 */
#include <isoflow/stage.h>

#include "stage_util.h"

#define STATE_MAGIC 0x69736f726f6f6d31ULL /* "isoroom1" */

/* The whole simulation state of this instance's room (also the kv
 * checkpoint, so only fixed-size integer fields). */
typedef struct room_state {
    uint64_t magic;     /* STATE_MAGIC */
    uint64_t cfg_hash;  /* hash of the config that produced this state */
    uint64_t rng;       /* the room's PRNG */
    uint64_t wrng;      /* the weather PRNG (same seed in every room) */
    int64_t seq;        /* readings emitted so far */
    int64_t co2;        /* 0.01 ppm */
    int64_t temp;       /* 0.001 degC */
    int64_t hum;        /* 0.01 % */
    int64_t pres;       /* 0.01 hPa, the outdoor weather */
    int64_t people;     /* occupants now */
    int64_t window;     /* simulated steps the window stays open (0: shut) */
    int64_t volume;     /* room volume, m3 */
    int64_t tolerance;  /* CO2 (0.01 ppm) above which occupants may air */
    int64_t temp_base;  /* 0.001 degC the heating aims at */
    int64_t hum_base;   /* 0.01 % */
    int64_t pres_off;   /* sensor calibration offset, 0.01 hPa */
} room_state;

static struct {
    int64_t seed, count, step, t0, co2_base, occupancy, glitch, save;
} cfg = {42, 0, 60, 1700000000, 420, 3, 10, 0};

static room_state st;
static char room[32];
static size_t room_len;
/* `{"room":"<room>","seq":`, the constant start of every reading, built
 * once by stage_init (at most 8 + 2 + 6 * 31 + 7 bytes). */
static char head[208];
static size_t head_len;

/* Reads one integer config key into *v; returns -1 for a malformed value. */
static int cfg_int(const char *c, size_t len, const char *key, int64_t *v,
                   int64_t lo, int64_t hi)
{
    int64_t x;
    int r = su_cfg_fixed(c, len, key, 0, &x);
    if (r < 0 || (r == 1 && (x < lo || x > hi))) {
        if_log(IF_LOG_ERROR, "room_sensor: bad config value for %s", key);
        return -1;
    }
    if (r == 1)
        *v = x;
    return 0;
}

/* Seeds the room's profile and starting conditions. */
static void room_start(uint64_t device)
{
    if_rand r, w;
    su_rng_seed(&r, (uint64_t)cfg.seed, device + 1u);
    su_rng_seed(&w, (uint64_t)cfg.seed, 0);
    st.magic = STATE_MAGIC;
    st.seq = 0;
    st.volume = su_rng_range(&r, 25, 60);
    st.tolerance = su_rng_range(&r, 1300, 2200) * 100;
    st.temp_base = su_rng_range(&r, 19500, 23000);
    st.hum_base = su_rng_range(&r, 3500, 5500);
    st.pres_off = su_rng_range(&r, -30, 30);
    st.people = su_rng_range(&r, 0, cfg.occupancy);
    if (st.people > 0)
        st.co2 = (cfg.co2_base + su_rng_range(&r, 150, 1100)) * 100;
    else
        st.co2 = (cfg.co2_base + su_rng_range(&r, 0, 200)) * 100;
    st.temp = st.temp_base + su_rng_range(&r, -800, 800);
    st.hum = st.hum_base + su_rng_range(&r, -500, 500);
    st.pres = 101325 + su_rng_range(&w, -1500, 1500);
    st.window = 0;
    st.rng = r.s;
    st.wrng = w.s;
}

/* Advances the room by one simulated step of cfg.step seconds. */
static void room_step(void)
{
    if_rand r = {st.rng}, w = {st.wrng};
    int64_t dt = cfg.step, excess, ach;

    /* Occupancy: now and then someone comes or goes. */
    if (su_rng_chance(&r, 25)) {
        if (su_rng_range(&r, 0, 1) == 0 && st.people > 0)
            st.people--;
        else if (st.people < cfg.occupancy)
            st.people++;
    }
    /* The window: opened when the air gets stale (or on a whim). */
    if (st.window > 0) {
        st.window--;
    } else if ((st.co2 > st.tolerance && su_rng_chance(&r, 60)) ||
               su_rng_chance(&r, 3)) {
        st.window = su_rng_range(&r, 5, 20);
    }
    /* CO2: 0.005 l/s per person into volume m3, air changes per hour
     * 0.5 shut / 6 open (in thousandths). */
    st.co2 += st.people * 500 * dt / st.volume;
    ach = st.window > 0 ? 6000 : 500;
    excess = st.co2 - cfg.co2_base * 100;
    st.co2 -= excess * ach * dt / 3600000;
    /* Temperature: the heating pulls to its set point, people warm the
     * room, an open window cools it. */
    st.temp += (st.temp_base - st.temp) / 40 + st.people * 8 +
               su_rng_range(&r, -15, 15);
    if (st.window > 0)
        st.temp -= 60;
    /* Humidity: people breathe out, open windows pull toward 60 %. */
    st.hum += (st.hum_base - st.hum) / 30 + st.people * 6 +
              su_rng_range(&r, -20, 20);
    if (st.window > 0)
        st.hum += (6000 - st.hum) / 10;
    if (st.hum < 500)
        st.hum = 500;
    if (st.hum > 9500)
        st.hum = 9500;
    /* Pressure: one weather for the whole home. */
    st.pres += (101325 - st.pres) / 200 + su_rng_range(&w, -8, 8);
    st.rng = r.s;
    st.wrng = w.s;
}

int stage_init(const char *config, size_t len)
{
    int64_t dev;
    int n;

    if (cfg_int(config, len, "seed", &cfg.seed, -(1LL << 62), 1LL << 62) ||
        cfg_int(config, len, "count", &cfg.count, 0, 1LL << 50) ||
        cfg_int(config, len, "step", &cfg.step, 1, 86400) ||
        cfg_int(config, len, "t0", &cfg.t0, 0, 1LL << 40) ||
        cfg_int(config, len, "co2_base", &cfg.co2_base, 0, 5000) ||
        cfg_int(config, len, "occupancy", &cfg.occupancy, 0, 100) ||
        cfg_int(config, len, "glitch", &cfg.glitch, 0, 1000) ||
        cfg_int(config, len, "save", &cfg.save, 0, 1LL << 30))
        return -1;

    n = if_meta_str(IF_META_INSTANCE, room, sizeof room);
    if (n < 0) {
        su_copy(room, sizeof room, "room", 4);
        n = 4;
    }
    room_len = if_strlen(room);
    dev = if_meta(IF_META_ORIGIN);
    if (dev < 0)
        dev = (int64_t)su_hash(room, room_len);

    head_len = (size_t)(SU_W_LIT(su_w_jstr(SU_W_LIT(head, "{\"room\":"),
                                           room, room_len),
                                 ",\"seq\":") - head);
    room_start((uint64_t)dev);
    st.cfg_hash = ((uint64_t)su_hash(config, len) << 32) | (uint64_t)dev;
    if (cfg.save > 0) {
        room_state saved;
        if (if_kv_get("sensor", &saved, sizeof saved) == (int)sizeof saved &&
            saved.magic == STATE_MAGIC && saved.cfg_hash == st.cfg_hash)
            st = saved;
    }
    return 0;
}

int stage_produce(void)
{
    /* Worst case 368 bytes: a 31-byte name of control bytes, 20-digit
     * seq and ts. */
    char out[512], *w = out;
    if_rand r;
    int64_t co2, temp, hum, pres;

    if (cfg.count > 0 && st.seq >= cfg.count)
        return 0;
    if (st.seq > 0)
        room_step();
    st.seq++;

    /* Sensor noise and rounding to the sensor's resolution. */
    r.s = st.rng;
    co2 = su_div_round(st.co2 + su_rng_range(&r, -1500, 1500), 10);
    temp = su_div_round(st.temp + su_rng_range(&r, -30, 30), 10);
    hum = su_div_round(st.hum + su_rng_range(&r, -20, 20), 10);
    pres = su_div_round(st.pres + st.pres_off + su_rng_range(&r, -5, 5), 10);
    if (su_rng_chance(&r, (uint32_t)cfg.glitch)) {
        switch (su_rng_range(&r, 0, 4)) {
        case 0: co2 = -10; break;        /* -1.0 ppm */
        case 1: co2 = 999990; break;     /* 99999.0 ppm */
        case 2: hum = 1400; break;       /* 140.0 % */
        case 3: temp = 18500; break;     /* 185.00 degC */
        default: pres = 0; break;        /* 0.0 hPa */
        }
    }
    st.rng = r.s;

    __builtin_memcpy(w, head, head_len);
    w += head_len;
    w = su_w_i64(w, st.seq);
    w = SU_W_LIT(w, ",\"ts\":");
    w = su_w_i64(w, (cfg.t0 + (st.seq - 1) * cfg.step) * 1000);
    w = SU_W_LIT(w, ",\"co2\":");
    w = su_w_fixed(w, co2, 1);
    w = SU_W_LIT(w, ",\"temp\":");
    w = su_w_fixed(w, temp, 2);
    w = SU_W_LIT(w, ",\"hum\":");
    w = su_w_fixed(w, hum, 1);
    w = SU_W_LIT(w, ",\"pres\":");
    w = su_w_fixed(w, pres, 1);
    *w++ = '}';
    if (cfg.save > 0 && st.seq % cfg.save == 0)
        if_kv_set("sensor", &st, sizeof st);
    return if_emit(out, (size_t)(w - out)) < 0 ? -1 : 0;
}
