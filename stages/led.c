/*
 * led.c - the room's LED (a device stage used as the sensor's actuator):
 * an actuation {"cmd":"blink","room":"room-03","co2":1234.5} makes it
 * "blink", which here means one log line
 *   room-03: LED blinking (open the window: co2 1234.5 ppm)
 * and one more in the kv counter `blinks` (decimal text).  {"cmd":"off"}
 * logs that the LED is off.  An actuation meant for another room, an
 * unknown command or a malformed message is logged as a warning and
 * counted in kv `rejected`; nothing is emitted unless config `ack=1`, which
 * emits {"room":...,"led":"blink","blinks":N} downstream after each blink.
 */
#include <isoflow/stage.h>

#include "stage_util.h"

static char room[32];
static size_t room_len;
static int64_t blinks, rejected;
static int64_t ack;
/* The members of an actuation; co2 in tenths of a ppm. */
static su_jkey keys[] = {SU_JKEY("cmd", -1), SU_JKEY("room", -1),
                         SU_JKEY("co2", 1)};

/* Reads a kv counter stored as decimal text (0 when absent). */
static int64_t kv_counter(const char *key)
{
    char buf[24];
    int64_t v = 0;
    int n = if_kv_get(key, buf, sizeof buf);
    if (n > 0 && (size_t)n <= sizeof buf &&
        su_parse_fixed(buf, (size_t)n, 0, &v) != (size_t)n)
        v = 0;
    return v;
}

static void kv_put_counter(const char *key, int64_t v)
{
    char buf[24];
    if_kv_set(key, buf, (size_t)(su_w_i64(buf, v) - buf));
}

int stage_init(const char *config, size_t len)
{
    su_jkeys_prepare(keys, 3);
    int n = if_meta_str(IF_META_INSTANCE, room, sizeof room);
    if (n < 0)
        su_copy(room, sizeof room, "led", 3);
    room_len = if_strlen(room);
    if (su_cfg_fixed(config, len, "ack", 0, &ack) < 0) {
        if_log(IF_LOG_ERROR, "led: ack must be 0 or 1");
        return -1;
    }
    blinks = kv_counter("blinks");
    rejected = kv_counter("rejected");
    return 0;
}

/* Logs why an actuation was not acted upon and counts it. */
static int reject(const char *why)
{
    rejected++;
    kv_put_counter("rejected", rejected);
    if_log(IF_LOG_WARN, "%s: LED ignored an actuation (%s)", room, why);
    return 0;
}

int stage_actuation(const uint8_t *msg, size_t len)
{
    su_jval v[3];
    char co2txt[32];

    if (su_json_read((const char *)msg, len, keys, 3, v) < 0 ||
        v[0].kind != SU_J_STRING)
        return reject("not a JSON command");
    if (v[1].kind == SU_J_STRING && !su_eq(v[1].p, v[1].n, room))
        return reject("meant for another room");
    if (su_eq(v[0].p, v[0].n, "off")) {
        if_log(IF_LOG_INFO, "%s: LED off", room);
        return 0;
    }
    if (!su_eq(v[0].p, v[0].n, "blink"))
        return reject("unknown command");

    blinks++;
    kv_put_counter("blinks", blinks);
    if (v[2].kind == SU_J_NUMBER && v[2].num_ok) {
        *su_w_fixed(co2txt, v[2].num, 1) = '\0';
        if_log(IF_LOG_INFO, "%s: LED blinking (open the window: co2 %s ppm)",
               room, co2txt);
    } else {
        if_log(IF_LOG_INFO, "%s: LED blinking (open the window)", room);
    }
    if (ack) {
        /* Worst case 2 + 6 * 31 + 43 bytes. */
        char out[256], *w = out;
        w = SU_W_LIT(w, "{\"room\":");
        w = su_w_jstr(w, room, room_len);
        w = SU_W_LIT(w, ",\"led\":\"blink\",\"blinks\":");
        w = su_w_i64(w, blinks);
        *w++ = '}';
        if_emit(out, (size_t)(w - out));
    }
    return 0;
}
