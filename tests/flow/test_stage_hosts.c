/*
 * test_stage_hosts.c - unit tests of the stage hosts (src/flow/stage_*.c):
 * the wasm and native hosts running the test stage hs_probe (built both
 * ways by isoflow_add_stage), their checks and error texts, and every
 * builtin, each against a fake if_host_api that records what the stage
 * does.  Paths come from the build: HS_DIR (test stages), HS_EXAMPLES
 * (examples/wasm modules, which lack the stage ABI).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "flow_int.h"

/* ---- The fake host. ---------------------------------------------------- */

#define MAXREC 300

typedef struct rec {
    char topic[40];
    uint8_t *data;
    size_t len;
} rec;

typedef struct fake {
    rec emits[MAXREC];
    size_t nemits;
    rec acts[MAXREC];
    size_t nacts;
    char logs[16][300];
    int loglevel[16];
    size_t nlogs;
    char kv_key[8][70];
    uint8_t kv_val[8][128];
    size_t kv_len[8];
    int kv_used[8];
    int64_t now;
} fake;

static void rec_add(rec *r, size_t *n, const char *topic, size_t tl,
                    const void *d, size_t len)
{
    assert_true(*n < MAXREC);
    rec *x = &r[(*n)++];
    snprintf(x->topic, sizeof x->topic, "%.*s", (int)tl, topic ? topic : "");
    x->data = malloc(len + 1);
    assert_non_null(x->data);
    memcpy(x->data, d, len);
    x->data[len] = '\0';
    x->len = len;
}

static int f_emit(void *ctx, const char *topic, size_t tl, const void *d,
                  size_t len)
{
    fake *f = ctx;
    rec_add(f->emits, &f->nemits, topic, tl, d, len);
    return 0;
}

static int f_actuate(void *ctx, const void *d, size_t len)
{
    fake *f = ctx;
    rec_add(f->acts, &f->nacts, NULL, 0, d, len);
    return 0;
}

static void f_log(void *ctx, int level, const char *text, size_t len)
{
    fake *f = ctx;
    if (f->nlogs < 16) {
        snprintf(f->logs[f->nlogs], sizeof f->logs[0], "%.*s", (int)len,
                 text);
        f->loglevel[f->nlogs++] = level;
    }
}

static int64_t f_now(void *ctx) { return ((fake *)ctx)->now; }

static int64_t f_meta(void *ctx, int field)
{
    (void)ctx;
    switch (field) {
    case IF_META_SEQ: return 7;
    case IF_META_TS: return 1234567890123;
    case IF_META_ORIGIN: return 3;
    case IF_META_VERSION: return 2;
    default: return IF_EINVAL;
    }
}

static int f_meta_str(void *ctx, int field, char *buf, size_t cap)
{
    (void)ctx;
    const char *s = field == IF_META_ORIGIN_NAME ? "room-03"
                  : field == IF_META_TOPIC       ? "in"
                  : field == IF_META_STAGE       ? "probe"
                  : field == IF_META_INSTANCE    ? "room-03" : NULL;
    if (!s)
        return IF_EINVAL;
    if (cap)
        snprintf(buf, cap, "%s", s);
    return (int)strlen(s);
}

static int kv_find(fake *f, const char *k, size_t kl)
{
    for (int i = 0; i < 8; i++)
        if (f->kv_used[i] && strlen(f->kv_key[i]) == kl &&
            memcmp(f->kv_key[i], k, kl) == 0)
            return i;
    return -1;
}

static int f_kv_get(void *ctx, const char *k, size_t kl, void *buf,
                    size_t cap)
{
    fake *f = ctx;
    int i = kv_find(f, k, kl);
    if (i < 0)
        return IF_ENOTFOUND;
    memcpy(buf, f->kv_val[i], f->kv_len[i] < cap ? f->kv_len[i] : cap);
    return (int)f->kv_len[i];
}

static int f_kv_set(void *ctx, const char *k, size_t kl, const void *v,
                    size_t len)
{
    fake *f = ctx;
    int i = kv_find(f, k, kl);
    for (int j = 0; i < 0 && j < 8; j++)
        if (!f->kv_used[j])
            i = j;
    if (i < 0 || len > 128)
        return IF_EFULL;
    snprintf(f->kv_key[i], sizeof f->kv_key[i], "%.*s", (int)kl, k);
    memcpy(f->kv_val[i], v, len);
    f->kv_len[i] = len;
    f->kv_used[i] = 1;
    return 0;
}

static int f_kv_del(void *ctx, const char *k, size_t kl)
{
    fake *f = ctx;
    int i = kv_find(f, k, kl);
    if (i < 0)
        return IF_ENOTFOUND;
    f->kv_used[i] = 0;
    return 0;
}

static const if_host_api fake_api = {IF_ABI_VERSION, f_emit, f_actuate,
                                     f_log, f_now, f_meta, f_meta_str,
                                     f_kv_get, f_kv_set, f_kv_del};

static void fake_reset(fake *f)
{
    for (size_t i = 0; i < f->nemits; i++)
        free(f->emits[i].data);
    for (size_t i = 0; i < f->nacts; i++)
        free(f->acts[i].data);
    memset(f, 0, sizeof *f);
}

/* ---- Helpers. ---------------------------------------------------------- */

static char err[1024];

static fl__stage stage_decl(const char *name, const char *kind,
                            const char *path, const char *config)
{
    fl__stage d;
    memset(&d, 0, sizeof d);
    d.name = (char *)name;
    d.kind = (char *)kind;
    d.path = (char *)path;
    d.config = (char *)(config ? config : "");
    d.group = -1;
    d.actuator_idx = -1;
    d.ninstances = 1;
    return d;
}

static fl__inst *create(const fl__stage *d, fake *f)
{
    const fl__stage_ops *ops = fl__stage_ops_find(d->kind);
    fl__inst *in = NULL;
    assert_non_null(ops);
    err[0] = '\0';
    fl_status st = ops->create(d, &fake_api, f, 3, &in, err, sizeof err);
    if (st != FL_OK)
        fail_msg("create %s: %s", d->name, err);
    return in;
}

static fl_status send(const fl__stage *d, fl__inst *in, const char *msg)
{
    err[0] = '\0';
    return fl__stage_ops_find(d->kind)->process(in, (const uint8_t *)msg,
                                                strlen(msg), err, sizeof err);
}

static void destroy(const fl__stage *d, fl__inst *in)
{
    fl__stage_ops_find(d->kind)->destroy(in);
}

static const char *probe_path(int native)
{
    return native ? HS_DIR "/hs_probe.so" : HS_DIR "/hs_probe.wasm";
}

/* ---- The wasm and native hosts, run on both kinds. --------------------- */

static void run_probe_basics(int native)
{
    const char *kind = native ? "native" : "wasm";
    fl__stage d = stage_decl("probe", kind, probe_path(native), "cfg-text");
    fake f = {0};
    fl__inst *in = create(&d, &f);

    assert_int_equal(send(&d, in, "echo:hello"), FL_OK);
    assert_int_equal(send(&d, in, "topic:alerts:high co2"), FL_OK);
    assert_int_equal(send(&d, in, "cfg"), FL_OK);
    assert_int_equal(f.nemits, 3);
    assert_string_equal((char *)f.emits[0].data, "hello");
    assert_string_equal(f.emits[0].topic, "");
    assert_string_equal(f.emits[1].topic, "alerts");
    assert_string_equal((char *)f.emits[1].data, "high co2");
    assert_string_equal((char *)f.emits[2].data, "cfg-text");

    /* actuate and the actuation entry point */
    assert_int_equal(send(&d, in, "act:blink"), FL_OK);
    assert_int_equal(f.nacts, 1);
    assert_string_equal((char *)f.acts[0].data, "blink");
    const fl__stage_ops *ops = fl__stage_ops_find(kind);
    assert_int_equal(ops->actuation(in, (const uint8_t *)"led", 3, err,
                                    sizeof err), FL_OK);
    assert_int_equal(f.nacts, 2);
    assert_string_equal((char *)f.acts[1].data, "A:led");
    assert_int_equal(ops->actuation(in, (const uint8_t *)"pass", 4, err,
                                    sizeof err), FL_PASS);
    assert_int_equal(ops->actuation(in, (const uint8_t *)"drop", 4, err,
                                    sizeof err), FL_OK);
    assert_int_equal(f.nacts, 2);

    /* kv round trip */
    assert_int_equal(send(&d, in, "kvset:temp=21.5"), FL_OK);
    assert_int_equal(send(&d, in, "kvget:temp"), FL_OK);
    assert_int_equal(send(&d, in, "kvdel:temp"), FL_OK);
    assert_int_equal(send(&d, in, "kvget:temp"), FL_OK);
    assert_int_equal(send(&d, in, "kvdel:temp"), FL_OK);
    assert_string_equal((char *)f.emits[3].data, "21.5");
    assert_string_equal((char *)f.emits[4].data, "del 0");
    assert_string_equal((char *)f.emits[5].data, "get -1");
    assert_string_equal((char *)f.emits[6].data, "del -1");

    /* metadata */
    f.now = 987654321;
    assert_int_equal(send(&d, in, "meta"), FL_OK);
    assert_string_equal((char *)f.emits[7].data,
                        "seq=7 ts=1234567890123 origin=3 ver=2 bad=-4 "
                        "now=987654321 name=room-03 topic=in stage=probe "
                        "inst=roo/7");

    /* log formatting */
    assert_int_equal(send(&d, in, "log"), FL_OK);
    assert_int_equal(f.nlogs, 1);
    assert_int_equal(f.loglevel[0], IF_LOG_WARN);
    assert_string_equal(f.logs[0],
                        "n=42 s=str f=3.14 u=7 x=ff z=9 [   ab] [5  ]");

    /* produce, per-instance globals */
    assert_int_equal(ops->produce(in, err, sizeof err), FL_OK);
    assert_string_equal((char *)f.emits[8].data, "produced 1");

    /* a stage error */
    assert_int_equal(send(&d, in, "fail"), FL_STAGE);
    assert_string_equal(err, "stage_process returned -7");

    /* emits beyond the per-call limit, and a too-long topic */
    size_t before = f.nemits;
    assert_int_equal(send(&d, in, "many"), FL_OK);
    assert_int_equal(f.nemits - before, FL__MAX_EMITS);
    destroy(&d, in);
    fake_reset(&f);

    /* init failure */
    fl__stage bad = stage_decl("probe", kind, probe_path(native), "fail");
    fl__inst *x = NULL;
    assert_int_equal(ops->create(&bad, &fake_api, &f, 0, &x, err, sizeof err),
                     FL_STAGE);
    assert_string_equal(err, "stage 'probe': stage_init returned -3");
    assert_null(x);
}

static void test_wasm_basics(void **s)
{
    (void)s;
    run_probe_basics(0);
}

static void test_native_basics(void **s)
{
    (void)s;
    run_probe_basics(1);
}

/* Two instances of the same stage have separate globals. */
static void run_instances(int native)
{
    fl__stage d = stage_decl("probe", native ? "native" : "wasm",
                             probe_path(native), "");
    fake f = {0};
    fl__inst *a = create(&d, &f), *b = create(&d, &f);
    send(&d, a, "count");
    send(&d, a, "count");
    send(&d, b, "count");
    assert_int_equal(f.nemits, 3);
    assert_string_equal((char *)f.emits[1].data, "count 2");
    assert_string_equal((char *)f.emits[2].data, "count 1");
    destroy(&d, a);
    destroy(&d, b);
    fake_reset(&f);
}

static void test_instances(void **s)
{
    (void)s;
    run_instances(0);
    run_instances(1);
}

/* The buffer contract: a 40 KB message, then a small one. */
static void test_wasm_buffer(void **s)
{
    (void)s;
    fl__stage d = stage_decl("probe", "wasm", probe_path(0), "");
    fake f = {0};
    fl__inst *in = create(&d, &f);
    size_t n = 40000;
    uint8_t *big = malloc(n);
    uint32_t sum = 0;
    assert_non_null(big);
    for (size_t i = 0; i < n; i++) {
        big[i] = (uint8_t)('a' + i % 26);
        sum = sum * 31u + big[i];
    }
    const fl__stage_ops *ops = fl__stage_ops_find("wasm");
    assert_int_equal(ops->process(in, big, n, err, sizeof err), FL_OK);
    assert_int_equal(send(&d, in, "echo:small"), FL_OK);
    char want[64];
    snprintf(want, sizeof want, "big 40000 %u", (unsigned)sum);
    assert_int_equal(f.nemits, 2);
    assert_string_equal((char *)f.emits[0].data, want);
    assert_string_equal((char *)f.emits[1].data, "small");
    /* beyond the message limit */
    uint8_t *huge = calloc(1, FL__MAX_MSG + 1);
    assert_non_null(huge);
    assert_int_equal(ops->process(in, huge, FL__MAX_MSG + 1, err, sizeof err),
                     FL_STAGE);
    assert_string_equal(err, "message of 65537 bytes is larger than 65536");
    free(huge);
    free(big);
    destroy(&d, in);
    fake_reset(&f);
}

static void test_wasm_traps(void **s)
{
    (void)s;
    fl__stage d = stage_decl("probe", "wasm", probe_path(0), "");
    d.fuel = 100000;
    d.max_memory_pages = 8;
    fake f = {0};
    fl__inst *in = create(&d, &f);
    assert_int_equal(send(&d, in, "trap"), FL_TRAP);
    assert_string_equal(err, "unreachable in function do_trap");
    destroy(&d, in);

    in = create(&d, &f);
    assert_int_equal(send(&d, in, "loop"), FL_TRAP);
    assert_string_equal(err, "out of fuel in function spin_forever");
    destroy(&d, in);

    /* memory cap: grows stop at 8 pages */
    in = create(&d, &f);
    assert_int_equal(send(&d, in, "grow"), FL_OK);
    assert_int_equal(f.nemits, 1);
    assert_string_equal((char *)f.emits[0].data, "pages 8");
    /* still usable after a trap-free call */
    assert_int_equal(send(&d, in, "echo:ok"), FL_OK);
    destroy(&d, in);
    fake_reset(&f);
}

/* The same C stage as .wasm and as .so: byte-identical emits. */
static void test_wasm_native_identical(void **s)
{
    (void)s;
    static const char *inputs[] = {
        ("json:{\"room\":\"r\\u00e9-1\",\"co2\": 812.44, \"id\":17,"
         "\"nested\":{\"co2\":1}}"),
        "json:{\"co2\":-0.05,\"id\":1.5}",
        "json:not json",
        "math",
        "meta",
        "echo:\x01\x02",
        "count",
    };
    fake fw = {0}, fn = {0};
    fl__stage dw = stage_decl("probe", "wasm", probe_path(0), "");
    fl__stage dn = stage_decl("probe", "native", probe_path(1), "");
    fl__inst *w = create(&dw, &fw), *n = create(&dn, &fn);
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        assert_int_equal(send(&dw, w, inputs[i]), FL_OK);
        assert_int_equal(send(&dn, n, inputs[i]), FL_OK);
    }
    assert_int_equal(fw.nemits, fn.nemits);
    for (size_t i = 0; i < fw.nemits; i++) {
        assert_int_equal(fw.emits[i].len, fn.emits[i].len);
        assert_memory_equal(fw.emits[i].data, fn.emits[i].data,
                            fw.emits[i].len);
    }
    assert_string_equal((char *)fw.emits[0].data,
                        "{\"co2\":812.4,\"half\":406.220,\"id\":17,"
                        "\"room\":\"r\xc3\xa9-1\",\"rc\":-1,\"ok\":true}");
    assert_string_equal((char *)fw.emits[1].data,
                        "{\"co2\":-0.1,\"half\":-0.025,\"id\":0,"
                        "\"room\":\"?\",\"rc\":-391,\"ok\":true}");
    assert_string_equal((char *)fw.emits[2].data,
                        "{\"co2\":0.0,\"half\":0.000,\"id\":0,\"room\":\"?\","
                        "\"rc\":-4394,\"ok\":false}");
    /* the math helpers against libm-quality values (9 decimals) */
    const char *m = (char *)fw.emits[3].data;
    assert_non_null(strstr(m, "\"sin\":0.841470985,"));
    assert_non_null(strstr(m, "\"cos\":-0.801143616,"));
    assert_non_null(strstr(m, "\"exp\":27.112638921,"));
    assert_non_null(strstr(m, "\"ln\":6.699992830,"));
    assert_non_null(strstr(m, "\"pow\":2.755675961,"));
    assert_non_null(strstr(m, "\"big\":1.50e+20,\"neg\":0.0,\"nan\":null}"));
    destroy(&dw, w);
    destroy(&dn, n);
    fake_reset(&fw);
    fake_reset(&fn);
}

static void test_checks(void **s)
{
    (void)s;
    const fl__stage_ops *wasm = fl__stage_ops_find("wasm");
    const fl__stage_ops *nat = fl__stage_ops_find("native");

    fl__stage d = stage_decl("probe", "wasm", probe_path(0), "");
    d.need_caps = IF_CAP_PROCESS | IF_CAP_PRODUCE | IF_CAP_ACTUATION;
    assert_int_equal(wasm->check(&d, err, sizeof err), FL_OK);

    fl__stage src = stage_decl("clean", "wasm", HS_DIR "/hs_source.wasm", "");
    src.need_caps = IF_CAP_PROCESS;
    assert_int_equal(wasm->check(&src, err, sizeof err), FL_CHECK);
    assert_string_equal(err, "stage 'clean': hs_source.wasm does not define "
                             "stage_process (needed: it has an upstream)");
    src.need_caps = IF_CAP_PRODUCE;
    assert_int_equal(wasm->check(&src, err, sizeof err), FL_OK);

    src.path = HS_DIR "/hs_source.so";
    src.kind = "native";
    src.need_caps = IF_CAP_PROCESS;
    assert_int_equal(nat->check(&src, err, sizeof err), FL_CHECK);
    assert_string_equal(err, "stage 'clean': hs_source.so does not define "
                             "stage_process (needed: it has an upstream)");

    /* a module without the stage ABI */
    fl__stage fib = stage_decl("fib", "wasm", HS_EXAMPLES "/fib.wasm", "");
    assert_int_equal(wasm->check(&fib, err, sizeof err), FL_CHECK);
    assert_string_equal(err, "stage 'fib': fib.wasm does not export "
                             "isoflow_abi (not built with the isoflow SDK?)");

    /* not a wasm file at all */
    char path[] = "/tmp/hs_notwasm_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hello\n", 6), 6);
    close(fd);
    fl__stage txt = stage_decl("t", "wasm", path, "");
    assert_int_equal(wasm->check(&txt, err, sizeof err), FL_CHECK);
    assert_non_null(strstr(err, "stage 't': hs_notwasm_"));
    assert_non_null(strstr(err, "magic"));
    txt.kind = "native";
    assert_int_equal(nat->check(&txt, err, sizeof err), FL_CHECK);
    assert_non_null(strstr(err, "stage 't': hs_notwasm_"));
    assert_non_null(strstr(err, ": cannot load: "));
    assert_null(strstr(err, "isoflow-stage-")); /* no temp-copy name */
    unlink(path);

    fl__stage missing = stage_decl("m", "wasm", "/nonexistent/x.wasm", "");
    assert_int_equal(wasm->check(&missing, err, sizeof err), FL_CHECK);
    assert_string_equal(err, "stage 'm': cannot read /nonexistent/x.wasm: "
                             "No such file or directory");
}

/* ---- Builtins. --------------------------------------------------------- */

static void feed(const fl__stage *d, fl__inst *in, const char *msg,
                 fl_status want)
{
    assert_int_equal(send(d, in, msg), want);
}

static void test_builtin_sample_null(void **s)
{
    (void)s;
    fake f = {0};
    fl__stage d = stage_decl("smp", "sample", NULL, "3");
    fl__inst *in = create(&d, &f);
    char m[16];
    for (int i = 1; i <= 10; i++) {
        snprintf(m, sizeof m, "m%d", i);
        feed(&d, in, m, FL_OK);
    }
    assert_int_equal(f.nemits, 3);
    assert_string_equal((char *)f.emits[0].data, "m3");
    assert_string_equal((char *)f.emits[1].data, "m6");
    assert_string_equal((char *)f.emits[2].data, "m9");
    destroy(&d, in);

    fl__stage bad = stage_decl("smp", "sample", NULL, "zero");
    assert_int_equal(fl__stage_ops_find("sample")->check(&bad, err, sizeof err),
                     FL_CHECK);
    assert_string_equal(err, "stage 'smp': sample needs a whole number N >= 1 "
                             "(forward every Nth message), got 'zero'");

    fl__stage n = stage_decl("nul", "null", NULL, "");
    in = create(&n, &f);
    feed(&n, in, "x", FL_OK);
    assert_int_equal(f.nemits, 3);
    destroy(&n, in);
    fake_reset(&f);
}

static void test_builtin_filter(void **s)
{
    (void)s;
    fake f = {0};
    fl__stage d = stage_decl("hi", "filter", NULL, "\"co2 >= 1000\"");
    assert_int_equal(fl__stage_ops_find("filter")->check(&d, err, sizeof err),
                     FL_OK);
    fl__inst *in = create(&d, &f);
    f.now = 5000000000;
    feed(&d, in, "{\"co2\":999.9}", FL_OK);
    feed(&d, in, "{\"co2\":1000}", FL_OK);
    feed(&d, in, "{\"co2\":1500.5,\"t\":21}", FL_OK);
    feed(&d, in, "not json", FL_OK);
    feed(&d, in, "{\"co2\":\"high\"}", FL_OK);
    feed(&d, in, "{\"temp\":1}", FL_OK);
    assert_int_equal(f.nemits, 2);
    assert_string_equal((char *)f.emits[0].data, "{\"co2\":1000}");
    assert_string_equal((char *)f.emits[1].data, "{\"co2\":1500.5,\"t\":21}");
    /* the first drop is reported at once, the next ones a second later */
    assert_int_equal(f.nlogs, 1);
    assert_string_equal(f.logs[0], "filter 'hi': dropped 1 message that are "
                                   "not JSON or lack a numeric 'co2'");
    f.now += 1000000000;
    feed(&d, in, "[]", FL_OK);
    assert_int_equal(f.nlogs, 2);
    assert_string_equal(f.logs[1], "filter 'hi': dropped 3 messages that are "
                                   "not JSON or lack a numeric 'co2'");
    destroy(&d, in);

    fl__stage nested = stage_decl("n", "filter", NULL, "air.co2 != 5");
    in = create(&nested, &f);
    feed(&nested, in, "{\"air\":{\"co2\":6}}", FL_OK);
    feed(&nested, in, "{\"air\":{\"co2\":5}}", FL_OK);
    assert_int_equal(f.nemits, 3);
    destroy(&nested, in);

    fl__stage bad = stage_decl("b", "filter", NULL, "co2 ~ 3");
    assert_int_equal(fl__stage_ops_find("filter")->check(&bad, err, sizeof err),
                     FL_CHECK);
    assert_string_equal(err, "stage 'b': filter needs \"FIELD OP NUMBER\" with "
                             "OP one of < <= > >= == != (filter \"co2 > "
                             "1000\"), got 'co2 ~ 3'");
    fake_reset(&f);
}

static void test_builtin_rate(void **s)
{
    (void)s;
    fake f = {0};
    fl__stage d = stage_decl("lim", "rate", NULL, "5/s");
    fl__inst *in = create(&d, &f);
    f.now = 1000000000;
    for (int i = 0; i < 8; i++) /* burst of 5 passes */
        feed(&d, in, "m", FL_OK);
    assert_int_equal(f.nemits, 5);
    f.now += 400000000; /* 0.4 s: 2 tokens */
    for (int i = 0; i < 4; i++)
        feed(&d, in, "m", FL_OK);
    assert_int_equal(f.nemits, 7);
    assert_int_equal(f.nlogs, 1);
    assert_string_equal(f.logs[0],
                        "rate 'lim': dropped 1 message over the rate limit");
    destroy(&d, in);
    fake_reset(&f);
}

static void test_builtin_jsonl_log_delay(void **s)
{
    (void)s;
    fake f = {0};
    char path[] = "/tmp/hs_jsonl_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    fl__stage d = stage_decl("store", "jsonl", path, "");
    assert_int_equal(fl__stage_ops_find("jsonl")->check(&d, err, sizeof err),
                     FL_OK);
    fl__inst *in = create(&d, &f);
    feed(&d, in, "{\"co2\": 812.4,\n \"t\":[1,2]}", FL_OK);
    feed(&d, in, "plain \"text\"\x01", FL_OK);
    destroy(&d, in);
    assert_int_equal(f.nemits, 2); /* forwarded unchanged */
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    unlink(path);
    assert_string_equal(
        buf,
        "{\"origin\":\"room-03\",\"seq\":7,\"ts\":1234567890123,\"topic\":"
        "\"in\",\"msg\":{\"co2\": 812.4,  \"t\":[1,2]}}\n"
        "{\"origin\":\"room-03\",\"seq\":7,\"ts\":1234567890123,\"topic\":"
        "\"in\",\"msg\":\"plain \\\"text\\\"\\u0001\"}\n");

    fl__stage bad = stage_decl("store", "jsonl", "/nonexistent/dir/x.jsonl",
                               "");
    assert_int_equal(fl__stage_ops_find("jsonl")->check(&bad, err, sizeof err),
                     FL_CHECK);
    assert_string_equal(err, "stage 'store': cannot write into directory "
                             "/nonexistent/dir: No such file or directory");

    fl__stage dl = stage_decl("slow", "delay", NULL, "20ms");
    in = create(&dl, &f);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    feed(&dl, in, "x", FL_OK);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 +
                (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    assert_true(ms >= 20.0);
    assert_int_equal(f.nemits, 3);
    destroy(&dl, in);

    fl__stage lg = stage_decl("tap", "log", NULL, "");
    in = create(&lg, &f);
    feed(&lg, in, "hello", FL_OK);
    assert_int_equal(f.nemits, 4);
    destroy(&lg, in);
    fake_reset(&f);
}

static void test_registry(void **s)
{
    (void)s;
    static const char *kinds[] = {"wasm", "native", "log",  "jsonl", "null",
                                  "sample", "rate", "filter", "delay"};
    const fl__stage_ops *const *all = fl__stage_ops_all();
    size_t n = 0;
    while (all[n])
        n++;
    assert_int_equal(n, sizeof kinds / sizeof kinds[0]);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(all[i]->kind, kinds[i]);
        assert_ptr_equal(fl__stage_ops_find(kinds[i]), all[i]);
        assert_true(strlen(all[i]->help) > 40);
    }
    assert_null(fl__stage_ops_find("nope"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_wasm_basics),
        cmocka_unit_test(test_native_basics),
        cmocka_unit_test(test_instances),
        cmocka_unit_test(test_wasm_buffer),
        cmocka_unit_test(test_wasm_traps),
        cmocka_unit_test(test_wasm_native_identical),
        cmocka_unit_test(test_checks),
        cmocka_unit_test(test_builtin_sample_null),
        cmocka_unit_test(test_builtin_filter),
        cmocka_unit_test(test_builtin_rate),
        cmocka_unit_test(test_builtin_jsonl_log_delay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
