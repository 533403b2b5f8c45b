/*
 * hs_probe.c - a test stage for tests/flow/test_stage_hosts.c: each message
 * is a command ("echo:TEXT", "trap", "kvget:KEY", ...) exercising one part
 * of the stage ABI, so that the same module checks the wasm and the native
 * host and their outputs can be compared byte for byte.
 */
#include "isoflow/json.h"
#include "isoflow/stage.h"

static char config[256];
static size_t config_len;
static int32_t counter;
static char out[70000];

static int starts(const uint8_t *m, size_t n, const char *p, size_t *skip)
{
    size_t k = if_strlen(p);
    if (n < k || !if_memeq(m, p, k))
        return 0;
    *skip = k;
    return 1;
}

/* Out of line so that the trap's function name is known. */
__attribute__((noinline)) static int do_trap(int x)
{
    if (x >= 0)
        __builtin_trap();
    return x;
}

__attribute__((noinline)) static int spin_forever(volatile int *p)
{
    for (;;)
        *p += 1;
    return *p;
}

int stage_init(const char *cfg, size_t len)
{
    if (len >= sizeof config)
        return -1;
    for (size_t i = 0; i < len; i++)
        config[i] = cfg[i];
    config_len = len;
    if (len == 4 && if_memeq(cfg, "fail", 4))
        return -3;
    return 0;
}

int stage_process(const uint8_t *m, size_t n)
{
    size_t k;
    if (n > 1000) { /* big message: its length and a checksum */
        uint32_t sum = 0;
        for (size_t i = 0; i < n; i++)
            sum = sum * 31u + m[i];
        int len = if_snprintf(out, sizeof out, "big %u %u", (unsigned)n,
                              (unsigned)sum);
        return if_emit(out, (size_t)len);
    }
    if (starts(m, n, "echo:", &k))
        return if_emit(m + k, n - k);
    if (starts(m, n, "topic:", &k)) { /* topic:T:TEXT */
        size_t i = k;
        while (i < n && m[i] != ':')
            i++;
        char t[64];
        size_t tl = i - k < sizeof t - 1 ? i - k : sizeof t - 1;
        for (size_t j = 0; j < tl; j++)
            t[j] = (char)m[k + j];
        t[tl] = '\0';
        return if_emit_topic(t, m + i + 1, n - i - 1);
    }
    if (starts(m, n, "act:", &k))
        return if_actuate(m + k, n - k);
    if (starts(m, n, "kvset:", &k)) { /* kvset:KEY=VALUE */
        char key[80];
        size_t i = k, j = 0;
        while (i < n && m[i] != '=' && j < sizeof key - 1)
            key[j++] = (char)m[i++];
        key[j] = '\0';
        return if_kv_set(key, m + i + 1, n - i - 1);
    }
    if (starts(m, n, "kvget:", &k) || starts(m, n, "kvdel:", &k)) {
        char key[80], val[128];
        size_t j = 0;
        for (size_t i = k; i < n && j < sizeof key - 1; i++)
            key[j++] = (char)m[i];
        key[j] = '\0';
        if (m[2] == 'd') {
            int rc = if_kv_del(key);
            int len = if_snprintf(out, sizeof out, "del %d", rc);
            return if_emit(out, (size_t)len);
        }
        int rc = if_kv_get(key, val, sizeof val);
        if (rc < 0) {
            int len = if_snprintf(out, sizeof out, "get %d", rc);
            return if_emit(out, (size_t)len);
        }
        return if_emit(val, (size_t)rc < sizeof val ? (size_t)rc : sizeof val);
    }
    if (starts(m, n, "meta", &k)) {
        char origin[32], topic[32], stage[32], inst[32];
        if_meta_str(IF_META_ORIGIN_NAME, origin, sizeof origin);
        if_meta_str(IF_META_TOPIC, topic, sizeof topic);
        if_meta_str(IF_META_STAGE, stage, sizeof stage);
        int il = if_meta_str(IF_META_INSTANCE, inst, 4); /* truncated */
        int len = if_snprintf(
            out, sizeof out,
            "seq=%lld ts=%lld origin=%lld ver=%lld bad=%lld now=%lld "
            "name=%s topic=%s stage=%s inst=%s/%d",
            (long long)if_meta(IF_META_SEQ), (long long)if_meta(IF_META_TS),
            (long long)if_meta(IF_META_ORIGIN),
            (long long)if_meta(IF_META_VERSION), (long long)if_meta(99),
            (long long)if_now_ns(), origin, topic, stage, inst, il);
        return if_emit(out, (size_t)len);
    }
    if (starts(m, n, "trap", &k))
        return do_trap((int)n);
    if (starts(m, n, "loop", &k)) {
        volatile int v = 0;
        return spin_forever(&v);
    }
    if (starts(m, n, "grow", &k)) {
#if defined(__wasm__)
        int pages = (int)__builtin_wasm_memory_size(0);
        while (__builtin_wasm_memory_grow(0, 1) != (size_t)-1)
            pages++;
        int len = if_snprintf(out, sizeof out, "pages %d", pages);
        return if_emit(out, (size_t)len);
#else
        return if_emit("native", 6);
#endif
    }
    if (starts(m, n, "fail", &k))
        return -7;
    if (starts(m, n, "log", &k)) {
        if_log(IF_LOG_WARN, "n=%d s=%s f=%.2f u=%u x=%x z=%zu [%5s] [%-3d]",
               42, "str", 3.14159, 7u, 255u, (size_t)9, "ab", 5);
        return 0;
    }
    if (starts(m, n, "cfg", &k))
        return if_emit(config, config_len);
    if (starts(m, n, "count", &k)) {
        counter++;
        int len = if_snprintf(out, sizeof out, "count %d", (int)counter);
        return if_emit(out, (size_t)len);
    }
    if (starts(m, n, "json:", &k)) {
        double co2 = 0, miss = 0;
        int64_t id = 0;
        char room[32];
        int rc1 = if_json_num(m + k, n - k, "co2", &co2);
        int rc2 = if_json_int(m + k, n - k, "id", &id);
        int rc3 = if_json_str(m + k, n - k, "room", room, sizeof room);
        int rc4 = if_json_num(m + k, n - k, "missing", &miss);
        if_json_writer w;
        char buf[256];
        if_json_begin(&w, buf, sizeof buf);
        if_json_add_num(&w, "co2", co2, 1);
        if_json_add_num(&w, "half", co2 / 2, 3);
        if_json_add_int(&w, "id", id);
        if_json_add_str(&w, "room", rc3 >= 0 ? room : "?");
        if_json_add_int(&w, "rc", rc1 * 1000 + rc2 * 100 + (rc3 < 0) * 10 +
                                      rc4);
        if_json_add_bool(&w, "ok", rc1 == 0);
        int len = if_json_end(&w);
        return len < 0 ? len : if_emit(buf, (size_t)len);
    }
    if (starts(m, n, "math", &k)) {
        if_rand r;
        if_rand_seed(&r, 42);
        if_json_writer w;
        char buf[512];
        if_json_begin(&w, buf, sizeof buf);
        if_json_add_num(&w, "sin", if_sin(1.0), 9);
        if_json_add_num(&w, "cos", if_cos(-2.5), 9);
        if_json_add_num(&w, "exp", if_exp(3.3), 9);
        if_json_add_num(&w, "ln", if_ln(812.4), 9);
        if_json_add_num(&w, "pow", if_pow(1.5, 2.5), 9);
        if_json_add_num(&w, "r1", if_rand_unit(&r), 9);
        if_json_add_num(&w, "n1", if_rand_normal(&r), 9);
        if_json_add_int(&w, "u", if_rand_u32(&r));
        if_json_add_num(&w, "big", 1.5e20, 2);
        if_json_add_num(&w, "neg", -0.04, 1);
        if_json_add_num(&w, "nan", 0.0 / 0.0 * 0.0, 1);
        int len = if_json_end(&w);
        return len < 0 ? len : if_emit(buf, (size_t)len);
    }
    if (starts(m, n, "many", &k)) { /* emits until refused */
        int i = 0;
        while (if_emit("x", 1) == 0)
            i++;
        int len = if_snprintf(out, sizeof out, "emitted %d", i);
        if_emit_topic("a-topic-that-is-far-too-long-for-isoflow", "y", 1);
        return len > 0 ? 0 : -1;
    }
    return if_emit(m, n); /* anything else: echo */
}

int stage_produce(void)
{
    counter++;
    int len = if_snprintf(out, sizeof out, "produced %d", (int)counter);
    return if_emit(out, (size_t)len);
}

int stage_actuation(const uint8_t *m, size_t n)
{
    if (n == 4 && if_memeq(m, "pass", 4))
        return 1;
    if (n == 4 && if_memeq(m, "drop", 4))
        return 0;
    out[0] = 'A';
    out[1] = ':';
    for (size_t i = 0; i < n && i < sizeof out - 2; i++)
        out[2 + i] = (char)m[i];
    return if_actuate(out, n + 2);
}
