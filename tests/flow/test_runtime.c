/*
 * test_runtime.c - unit tests of the flow runtime (src/flow/runtime.c):
 * mode semantics, composition, actuation routing, supervision, kv and clean
 * stop, on hand-built graphs whose stages are test doubles registered
 * through fl__rt_set_ops_lookup (so that the runtime is tested alone).
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

#include "rt_int.h"

/* ------------------------------------------------------------------------ */
/* Test stages: behaviour from the config string ("key=value ...").         */

#define MAXDEV 16
#define MAXREC 4096

/* Per-stage counters, found by stage name. */
typedef struct tcount {
    char name[32];
    _Atomic uint64_t produce, process, creates, act, act_wrong, noroute_seen;
    _Atomic uint64_t act_by_dev[MAXDEV];
    _Atomic uint64_t kvlast;
    _Atomic uint64_t emitted; /* source emits accepted */
    /* Received seqs and the source's produce count at receipt (t_seq). */
    _Atomic uint32_t nrec;
    uint64_t rec_seq[MAXREC], rec_latest[MAXREC];
} tcount;

static tcount counts[16];
static unsigned ncounts;

static tcount *tc(const char *name)
{
    for (unsigned i = 0; i < ncounts; i++)
        if (strcmp(counts[i].name, name) == 0)
            return &counts[i];
    assert_true(ncounts < 16);
    tcount *c = &counts[ncounts++];
    snprintf(c->name, sizeof c->name, "%s", name);
    return c;
}

static void reset_counts(void)
{
    memset(counts, 0, sizeof counts);
    ncounts = 0;
}

typedef struct tcfg {
    unsigned emit;       /* messages emitted per produce/process (default 1) */
    unsigned limit;      /* sources: total produce calls that emit (0: no limit) */
    unsigned delay_us;   /* process: busy time */
    unsigned trap_every; /* process: trap on every Nth message of the stage */
    unsigned act_every;  /* process: actuate every Nth message */
    unsigned kv;         /* process: count messages in kv "count" */
    unsigned led;        /* actuation: handle (FL_OK) and check the device */
    unsigned record;     /* process: record seq and the source's count */
    char watch[32];      /* record: the source stage whose produce count */
} tcfg;

struct fl__inst {
    const if_host_api *api;
    void *ctx;
    int32_t device;
    tcfg cfg;
    tcount *c;
    tcount *watch; /* record: the watched source's counters */
};

static unsigned cfg_num(const char *cfg, const char *key)
{
    const char *p = strstr(cfg, key);
    if (!p)
        return 0;
    p += strlen(key);
    if (*p != '=')
        return 0;
    return (unsigned)strtoul(p + 1, NULL, 10);
}

static fl_status t_create(const fl__stage *d, const if_host_api *api,
                          void *ctx, int32_t device, fl__inst **out, char *err,
                          size_t errlen)
{
    fl__inst *in = calloc(1, sizeof *in);
    const char *w;
    (void)err;
    (void)errlen;
    if (!in)
        return FL_NOMEM;
    in->api = api;
    in->ctx = ctx;
    in->device = device;
    in->cfg.emit = strstr(d->config, "emit=") ? cfg_num(d->config, "emit")
                                               : 1;
    in->cfg.limit = cfg_num(d->config, "limit");
    in->cfg.delay_us = cfg_num(d->config, "delay_us");
    in->cfg.trap_every = cfg_num(d->config, "trap_every");
    in->cfg.act_every = cfg_num(d->config, "act_every");
    in->cfg.kv = cfg_num(d->config, "kv");
    in->cfg.led = cfg_num(d->config, "led");
    in->cfg.record = cfg_num(d->config, "record");
    w = strstr(d->config, "watch=");
    if (w)
        snprintf(in->cfg.watch, sizeof in->cfg.watch, "%.*s",
                 (int)strcspn(w + 6, " "), w + 6);
    in->c = tc(d->name);
    in->watch = tc(in->cfg.watch[0] ? in->cfg.watch : d->name);
    atomic_fetch_add(&in->c->creates, 1);
    *out = in;
    return FL_OK;
}

static void busy_us(unsigned us)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if ((t1.tv_sec - t0.tv_sec) * 1000000L +
                (t1.tv_nsec - t0.tv_nsec) / 1000 >=
            (long)us)
            return;
    }
}

static fl_status t_produce(fl__inst *in, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    uint64_t n = atomic_fetch_add(&in->c->produce, 1) + 1;
    if (in->cfg.limit && n > in->cfg.limit)
        return FL_OK;
    for (unsigned i = 0; i < in->cfg.emit; i++) {
        char buf[64];
        int len = snprintf(buf, sizeof buf, "{\"d\":%d,\"n\":%llu}",
                           (int)in->device, (unsigned long long)n);
        if (in->api->emit(in->ctx, NULL, 0, buf, (size_t)len) == IF_OK)
            atomic_fetch_add(&in->c->emitted, 1);
    }
    return FL_OK;
}

static fl_status t_process(fl__inst *in, const uint8_t *msg, size_t len,
                           char *err, size_t errlen)
{
    uint64_t n = atomic_fetch_add(&in->c->process, 1) + 1;
    if (in->cfg.kv) {
        uint64_t v = 0;
        /* no cmocka assertions on worker threads: errors are returned */
        int r = in->api->kv_get(in->ctx, "count", 5, &v, sizeof v);
        if (r != IF_ENOTFOUND && r != (int)sizeof v)
            return FL_STAGE;
        v++;
        if (in->api->kv_set(in->ctx, "count", 5, &v, sizeof v) != IF_OK)
            return FL_STAGE;
        atomic_store(&in->c->kvlast, v);
    }
    if (in->cfg.record) {
        uint32_t k = atomic_fetch_add(&in->c->nrec, 1);
        if (k < MAXREC) {
            in->c->rec_seq[k] =
                (uint64_t)in->api->meta(in->ctx, IF_META_SEQ);
            in->c->rec_latest[k] = atomic_load(&in->watch->produce);
        }
    }
    if (in->cfg.delay_us)
        busy_us(in->cfg.delay_us);
    if (in->cfg.trap_every && n % in->cfg.trap_every == 0) {
        snprintf(err, errlen, "unreachable executed (test) at message %llu",
                 (unsigned long long)n);
        return FL_TRAP;
    }
    if (in->cfg.act_every && n % in->cfg.act_every == 0) {
        char buf[32];
        int64_t o = in->api->meta(in->ctx, IF_META_ORIGIN);
        int blen = snprintf(buf, sizeof buf, "to=%lld", (long long)o);
        if (in->api->actuate(in->ctx, buf, (size_t)blen) == IF_ENOROUTE)
            atomic_fetch_add(&in->c->noroute_seen, 1);
    }
    for (unsigned i = 0; i < in->cfg.emit; i++)
        in->api->emit(in->ctx, NULL, 0, msg, len);
    return FL_OK;
}

static fl_status t_actuation(fl__inst *in, const uint8_t *msg, size_t len,
                             char *err, size_t errlen)
{
    char buf[32];
    (void)err;
    (void)errlen;
    if (!in->cfg.led)
        return FL_PASS;
    snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)msg);
    long to = strncmp(buf, "to=", 3) == 0 ? strtol(buf + 3, NULL, 10) : -1;
    atomic_fetch_add(&in->c->act, 1);
    if (to != in->device)
        atomic_fetch_add(&in->c->act_wrong, 1);
    if (in->device >= 0 && in->device < MAXDEV)
        atomic_fetch_add(&in->c->act_by_dev[in->device], 1);
    return FL_OK;
}

static void t_destroy(fl__inst *in) { free(in); }

static const fl__stage_ops t_ops = {
    "t", "test stage", "test stage", NULL, t_create, t_process,
    t_produce, t_actuation, t_destroy};

static const fl__stage_ops *t_find(const char *kind)
{
    return strcmp(kind, "t") == 0 ? &t_ops : NULL;
}

/* ------------------------------------------------------------------------ */
/* Hand-built graphs: one device group "dev" of `ndev` devices.             */

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    assert_non_null(d);
    memcpy(d, s, n);
    return d;
}

static fl_graph *gnew(uint32_t ndev)
{
    fl_graph *g = calloc(1, sizeof *g);
    assert_non_null(g);
    g->file = dupstr("test.flow");
    g->ndevices = ndev;
    g->device_names = calloc(ndev + 1, sizeof *g->device_names);
    for (uint32_t i = 0; i < ndev; i++) {
        char n[32];
        snprintf(n, sizeof n, "dev-%02u", (unsigned)i);
        g->device_names[i] = dupstr(n);
    }
    return g;
}

static uint32_t gstage(fl_graph *g, const char *name, int layer,
                       const char *config)
{
    g->stages = realloc(g->stages, (g->nstages + 1) * sizeof *g->stages);
    assert_non_null(g->stages);
    fl__stage *s = &g->stages[g->nstages];
    memset(s, 0, sizeof *s);
    s->name = dupstr(name);
    s->layer = (uint8_t)layer;
    s->group = -1;
    s->kind = dupstr("t");
    s->config = dupstr(config);
    s->actuator_idx = -1;
    s->ninstances = layer == FL__LAYER_DEVICE ? g->ndevices : 1;
    return g->nstages++;
}

static void gedge(fl_graph *g, uint32_t from, uint32_t to, int bidir)
{
    g->edges = realloc(g->edges, (g->nedges + 1) * sizeof *g->edges);
    assert_non_null(g->edges);
    g->edges[g->nedges].from = from;
    g->edges[g->nedges].to = to;
    g->edges[g->nedges].bidir = (uint8_t)bidir;
    g->edges[g->nedges].flow = 0;
    g->nedges++;
}

static void gsource(fl_graph *g, uint32_t stage, int mode, uint64_t ns,
                    uint32_t credits, int policy, uint32_t buffer)
{
    g->sources = realloc(g->sources, (g->nsources + 1) * sizeof *g->sources);
    assert_non_null(g->sources);
    fl__source *s = &g->sources[g->nsources++];
    memset(s, 0, sizeof *s);
    s->stage = stage;
    s->mode = (uint8_t)mode;
    s->interval_ns = ns;
    s->credits = credits;
    s->policy = (uint8_t)policy;
    s->buffer = buffer;
}

static void gfree(fl_graph *g)
{
    for (uint32_t i = 0; i < g->nstages; i++) {
        free(g->stages[i].name);
        free(g->stages[i].kind);
        free(g->stages[i].config);
    }
    for (uint32_t i = 0; i < g->ndevices; i++)
        free(g->device_names[i]);
    free(g->device_names);
    free(g->stages);
    free(g->edges);
    free(g->sources);
    free(g->file);
    free(g);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char dl_path[64];

static fl_runtime *start(fl_graph *g, fl_run_opts *o)
{
    fl_runtime *rt = NULL;
    char err[256];
    snprintf(dl_path, sizeof dl_path, "/tmp/isoflow_test_dl_%ld.jsonl",
             (long)getpid());
    unlink(dl_path);
    o->dead_letter = dl_path;
    fl__rt_set_ops_lookup(t_find);
    fl_status s = fl_runtime_new(g, o, &rt, err, sizeof err);
    if (s != FL_OK)
        fprintf(stderr, "fl_runtime_new: %s\n", err);
    assert_int_equal(s, FL_OK);
    assert_int_equal(fl_runtime_start(rt), FL_OK);
    return rt;
}

static fl_stage_stats stats_of(fl_runtime *rt, uint32_t stage)
{
    fl_stage_stats st[16];
    uint32_t n = fl_runtime_stats(rt, st, 16);
    assert_true(stage < n);
    return st[stage];
}

static void setup_opts(fl_run_opts *o)
{
    fl_run_opts_default(o);
    o->workers = 2;
    o->max_restarts = 1000;
    reset_counts();
}

/* ------------------------------------------------------------------------ */
/* Modes.                                                                   */

/* 4 devices pushing every 100 ms at time_scale 10 (10 ms) for 1 s: 100
 * readings each, within 15%; every reading reaches the sink. */
static void test_push_rate(void **state)
{
    (void)state;
    fl_run_opts o;
    setup_opts(&o);
    o.time_scale = 10;
    fl_graph *g = gnew(4);
    uint32_t src = gstage(g, "sensor", FL__LAYER_DEVICE, "");
    uint32_t sink = gstage(g, "sink", FL__LAYER_CLOUD, "emit=0");
    gedge(g, src, sink, 0);
    gsource(g, src, FL__MODE_PUSH, 100000000ull, 0, 0, 0);
    fl_runtime *rt = start(g, &o);
    sleep_ms(1000);
    assert_int_equal(fl_runtime_stop(rt, 5000), FL_OK);
    uint64_t p = atomic_load(&tc("sensor")->produce);
    assert_in_range(p, 340, 460);
    fl_stage_stats ss = stats_of(rt, src), sk = stats_of(rt, sink);
    assert_int_equal(ss.out, p);
    assert_int_equal(ss.dropped, 0);
    assert_int_equal(sk.in, p);
    assert_int_equal(atomic_load(&tc("sink")->process), p);
    fl_run_stats tot;
    fl_runtime_totals(rt, &tot);
    assert_int_equal(tot.produced, p);
    assert_int_equal(tot.delivered, p);
    assert_true(tot.e2e_p99_us > 0);
    assert_true(sk.p50_us > 0 && sk.p99_us >= sk.p50_us);
    assert_string_equal(ss.layer, "device");
    assert_string_equal(sk.layer, "cloud");
    fl_runtime_free(rt);
    gfree(g);
}

/* Pull every 50 ms over 3 devices for 1 s: each device is asked 19-20
 * times (first ask after one interval), never more. */
static void test_pull_interval(void **state)
{
    (void)state;
    fl_run_opts o;
    setup_opts(&o);
    fl_graph *g = gnew(3);
    uint32_t src = gstage(g, "sensor", FL__LAYER_DEVICE, "");
    uint32_t sink = gstage(g, "sink", FL__LAYER_EDGE, "emit=0");
    gedge(g, src, sink, 0);
    gsource(g, src, FL__MODE_PULL, 50000000ull, 0, 0, 0);
    fl_runtime *rt = start(g, &o);
    sleep_ms(1020);
    assert_int_equal(fl_runtime_stop(rt, 5000), FL_OK);
    uint64_t p = atomic_load(&tc("sensor")->produce);
    assert_in_range(p, 3 * 17, 3 * 20);
    assert_int_equal(p % 3, 0); /* every ask reaches every device */
    assert_int_equal(stats_of(rt, sink).in, p);
    fl_runtime_free(rt);
    gfree(g);
}

/* Demand with 4 credits and no schedule, behind a 2 ms consumer: in flight
 * never exceeds the credits, and the source produces only as fast as the
 * consumer takes. */
static void test_demand_credits(void **state)
{
    (void)state;
    fl_run_opts o;
    setup_opts(&o);
    fl_graph *g = gnew(1);
    uint32_t src = gstage(g, "sensor", FL__LAYER_DEVICE, "");
    uint32_t slow = gstage(g, "slow", FL__LAYER_EDGE, "delay_us=2000");
    uint32_t sink = gstage(g, "sink", FL__LAYER_CLOUD, "emit=0");
    gedge(g, src, slow, 1);
    gedge(g, slow, sink, 1);
    gsource(g, src, FL__MODE_DEMAND, 0, 4, FL__POLICY_BLOCK, 0);
    fl_runtime *rt = start(g, &o);
    for (int i = 0; i < 40; i++) {
        sleep_ms(10);
        fl_stage_stats a = stats_of(rt, src), b = stats_of(rt, slow);
        /* emitted - consumed: the credits, plus one reading between its
         * emit and its send */
        assert_true(a.out - b.in <= 4 + 1);
    }
    assert_int_equal(fl_runtime_stop(rt, 5000), FL_OK);
    assert_int_equal(fl__rt_inflight_max(rt, src), 4);
    fl_stage_stats a = stats_of(rt, src), b = stats_of(rt, slow);
    assert_true(b.in >= 20);
    assert_true(a.out <= b.in + 1); /* at most one reading left unsent */
    assert_int_equal(a.dropped, 0);
    assert_int_equal(stats_of(rt, sink).in, b.in);
    fl_runtime_free(rt);
    gfree(g);
}

/* Demand every 1 ms, 1 credit, a 20 ms consumer, one policy. */
static fl_runtime *run_policy(fl_graph **gp, int policy, uint32_t buffer)
{
    fl_run_opts o;
    setup_opts(&o);
    fl_graph *g = gnew(1);
    uint32_t src = gstage(g, "sensor", FL__LAYER_DEVICE, "");
    uint32_t slow = gstage(g, "slow", FL__LAYER_EDGE,
                           "delay_us=20000 record=1 watch=sensor emit=0");
    gedge(g, src, slow, 1);
    gsource(g, src, FL__MODE_DEMAND, 1000000ull, 1, policy, buffer);
    fl_runtime *rt = start(g, &o);
    sleep_ms(500);
    assert_int_equal(fl_runtime_stop(rt, 5000), FL_OK);
    *gp = g;
    return rt;
}

static void test_policy_block(void **state)
{
    (void)state;
    fl_graph *g;
    fl_runtime *rt = run_policy(&g, FL__POLICY_BLOCK, 0);
    uint64_t produced = atomic_load(&tc("sensor")->produce);
    uint64_t consumed = atomic_load(&tc("slow")->process);
    /* produce is called only with a credit in hand: once per consumed
     * reading plus the one in flight */
    assert_true(consumed >= 5);
    assert_true(produced <= consumed + 1);
    assert_int_equal(stats_of(rt, 0).dropped, 0);
    assert_int_equal(fl__rt_inflight_max(rt, 0), 1);
    fl_runtime_free(rt);
    gfree(g);
}

static void check_newest(tcount *c, uint64_t slack)
{
    uint32_t n = atomic_load(&c->nrec);
    assert_true(n >= 5);
    /* From the second reading on (the first is sent at once), each one is
     * among the newest: its seq is close to the latest produced. */
    for (uint32_t i = 1; i < n && i < MAXREC; i++) {
        assert_true(c->rec_seq[i] + slack >= c->rec_latest[i]);
        assert_true(c->rec_seq[i] > c->rec_seq[i - 1]);
    }
}

static void test_policy_drop_oldest(void **state)
{
    (void)state;
    fl_graph *g;
    fl_runtime *rt = run_policy(&g, FL__POLICY_DROP_OLDEST, 3);
    uint64_t produced = atomic_load(&tc("sensor")->produce);
    uint64_t consumed = atomic_load(&tc("slow")->process);
    fl_stage_stats s = stats_of(rt, 0);
    assert_true(produced > 5 * consumed);
    /* everything produced was consumed, dropped, or is among the <= 3 kept */
    assert_true(s.dropped + consumed <= produced);
    assert_true(s.dropped + consumed + 3 >= produced);
    check_newest(tc("slow"), 40);
    fl_runtime_free(rt);
    gfree(g);
}

static void test_policy_sample(void **state)
{
    (void)state;
    fl_graph *g;
    fl_runtime *rt = run_policy(&g, FL__POLICY_SAMPLE, 0);
    uint64_t produced = atomic_load(&tc("sensor")->produce);
    uint64_t consumed = atomic_load(&tc("slow")->process);
    fl_stage_stats s = stats_of(rt, 0);
    assert_true(produced > 5 * consumed);
    assert_true(s.dropped + consumed <= produced);
    assert_true(s.dropped + consumed + 1 >= produced);
    check_newest(tc("slow"), 40);
    fl_runtime_free(rt);
    gfree(g);
}

/* ------------------------------------------------------------------------ */
/* Composition.                                                             */

/* src -> [a (x2), b] -> {c (x1), d (x3)} -> sink: a parallel block emits
 * the union of its branches' outputs. */
static void test_serial_parallel(void **state)
{
    (void)state;
    fl_run_opts o;
    setup_opts(&o);
    o.time_scale = 10;
    fl_graph *g = gnew(2);
    uint32_t src = gstage(g, "src", FL__LAYER_DEVICE, "limit=30");
    uint32_t a = gstage(g, "a", FL__LAYER_EDGE, "emit=2");
    uint32_t b = gstage(g, "b", FL__LAYER_EDGE, "");
    uint32_t c = gstage(g, "c", FL__LAYER_CLOUD, "emit=1");
    uint32_t d = gstage(g, "d", FL__LAYER_CLOUD, "emit=3");
    uint32_t sink = gstage(g, "sink", FL__LAYER_CLOUD, "emit=0");
    gedge(g, src, a, 1);
    gedge(g, a, b, 1);
    gedge(g, b, c, 1);
    gedge(g, b, d, 1);
    gedge(g, c, sink, 1);
    gedge(g, d, sink, 1);
    gsource(g, src, FL__MODE_PUSH, 20000000ull, 0, 0, 0);
    fl_runtime *rt = start(g, &o);
    while (atomic_load(&tc("src")->produce) < 40)
        sleep_ms(5);
    assert_int_equal(fl_runtime_stop(rt, 5000), FL_OK);
    assert_int_equal(atomic_load(&tc("src")->emitted), 30);
    assert_int_equal(stats_of(rt, a).in, 30);
    assert_int_equal(stats_of(rt, b).in, 60);
    assert_int_equal(stats_of(rt, c).in, 60);
    assert_int_equal(stats_of(rt, d).in, 60);
    assert_int_equal(stats_of(rt, c).out, 60);
    assert_int_equal(stats_of(rt, d).out, 180);
    assert_int_equal(stats_of(rt, sink).in, 240);
    fl_run_stats tot;
    fl_runtime_totals(rt, &tot);
    assert_int_equal(tot.produced, 30);
    assert_int_equal(tot.delivered, 240);
    fl_runtime_free(rt);
    gfree(g);
}

/* ------------------------------------------------------------------------ */
/* Actuations.                                                              */

static fl_graph *act_graph(int oneway, uint32_t *cloud)
{
    fl_graph *g = gnew(4);
    uint32_t src = gstage(g, "sensor", FL__LAYER_DEVICE, "limit=40");
    uint32_t led = gstage(g, "led", FL__LAYER_DEVICE, "led=1");
    uint32_t edge = gstage(g, "edge", FL__LAYER_EDGE, "");
    *cloud = gstage(g, "cloud", FL__LAYER_CLOUD, "act_every=1 emit=0");
    g->stages[src].actuator_idx = (int32_t)led;
    gedge(g, src, edge, !oneway);
    gedge(g, edge, *cloud, 1);
    gsource(g, src, FL__MODE_PUSH, 20000000ull, 0, 0, 0);
    return g;
}

/* Every cloud decision reaches the LED of the device that caused it, and
 * only that one. */
static void test_actuation_origin(void **state)
{
    (void)state;
    fl_run_opts o;
    uint32_t cloud;
    setup_opts(&o);
    o.time_scale = 10;
    fl_graph *g = act_graph(0, &cloud);
    fl_runtime *rt = start(g, &o);
    while (atomic_load(&tc("sensor")->produce) < 48)
        sleep_ms(5);
    assert_int_equal(fl_runtime_stop(rt, 5000), FL_OK);
    tcount *led = tc("led");
    assert_int_equal(atomic_load(&tc("cloud")->process), 40);
    assert_int_equal(atomic_load(&led->act), 40);
    assert_int_equal(atomic_load(&led->act_wrong), 0);
    uint64_t sum = 0;
    for (int d = 0; d < 4; d++) {
        assert_true(atomic_load(&led->act_by_dev[d]) > 0);
        sum += atomic_load(&led->act_by_dev[d]);
    }
    assert_int_equal(sum, 40);
    fl_run_stats tot;
    fl_runtime_totals(rt, &tot);
    assert_int_equal(tot.actuations, 40);
    assert_int_equal(stats_of(rt, 1).actuations, 40); /* led */
    assert_int_equal(stats_of(rt, 2).actuations, 40); /* edge passed them */
    assert_int_equal(atomic_load(&tc("cloud")->noroute_seen), 0);
    fl_runtime_free(rt);
    gfree(g);
}

/* sensor ~> edge <~> cloud: no way back, the cloud gets IF_ENOROUTE. */
static void test_actuation_oneway(void **state)
{
    (void)state;
    fl_run_opts o;
    uint32_t cloud;
    setup_opts(&o);
    o.time_scale = 10;
    fl_graph *g = act_graph(1, &cloud);
    fl_runtime *rt = start(g, &o);
    while (atomic_load(&tc("sensor")->produce) < 48)
        sleep_ms(5);
    assert_int_equal(fl_runtime_stop(rt, 5000), FL_OK);
    assert_int_equal(atomic_load(&tc("cloud")->process), 40);
    assert_int_equal(atomic_load(&tc("cloud")->noroute_seen), 40);
    assert_int_equal(fl__rt_noroute(rt, cloud), 40);
    assert_int_equal(atomic_load(&tc("led")->act), 0);
    fl_run_stats tot;
    fl_runtime_totals(rt, &tot);
    assert_int_equal(tot.actuations, 0);
    fl_runtime_free(rt);
    gfree(g);
}

/* ------------------------------------------------------------------------ */
/* Supervision and state.                                                   */

static fl_runtime *run_trapper(fl_graph **gp, const char *cfg,
                               uint32_t max_restarts, unsigned limit)
{
    fl_run_opts o;
    char scfg[32];
    setup_opts(&o);
    o.max_restarts = max_restarts;
    o.time_scale = 10;
    fl_graph *g = gnew(1);
    snprintf(scfg, sizeof scfg, "limit=%u", limit);
    uint32_t src = gstage(g, "src", FL__LAYER_DEVICE, scfg);
    uint32_t t = gstage(g, "t", FL__LAYER_EDGE, cfg);
    uint32_t sink = gstage(g, "sink", FL__LAYER_CLOUD, "emit=0");
    gedge(g, src, t, 1);
    gedge(g, t, sink, 1);
    gsource(g, src, FL__MODE_PUSH, 10000000ull, 0, 0, 0);
    fl_runtime *rt = start(g, &o);
    while (atomic_load(&tc("src")->produce) < limit + 5)
        sleep_ms(5);
    assert_int_equal(fl_runtime_stop(rt, 5000), FL_OK);
    *gp = g;
    return rt;
}

static unsigned count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    unsigned n = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (!needle || strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

/* A stage trapping on every 5th message: 10 dead letters with the trap's
 * text, the 40 others processed, 10 restarts, the node keeps running. */
static void test_trap_restart(void **state)
{
    (void)state;
    fl_graph *g;
    fl_runtime *rt = run_trapper(&g, "trap_every=5", 100, 50);
    fl_stage_stats t = stats_of(rt, 1);
    assert_int_equal(t.in, 50);
    assert_int_equal(t.traps, 10);
    assert_int_equal(t.errors, 10);
    assert_int_equal(t.restarts, 10);
    assert_int_equal(t.stopped, 0);
    assert_int_equal(atomic_load(&tc("t")->creates), 11);
    assert_int_equal(stats_of(rt, 2).in, 40);
    assert_int_equal(count_lines(dl_path, NULL), 10);
    assert_int_equal(count_lines(dl_path, "\"error\":\"unreachable executed "
                                          "(test) at message "),
                     10);
    assert_int_equal(count_lines(dl_path, "\"stage\":\"t\""), 10);
    assert_int_equal(count_lines(dl_path, "\"message\":\"{\\\"d\\\":0,"), 10);
    assert_int_equal(count_lines(dl_path, "\"in\":\"process\""), 10);
    fl_run_stats tot;
    fl_runtime_totals(rt, &tot);
    assert_int_equal(tot.errors, 10);
    fl_runtime_free(rt);
    unlink(dl_path);
    gfree(g);
}

/* Trapping on every message with max_restarts 3: 3 restarts, the 4th trap
 * stops the stage; later messages are dropped and counted. */
static void test_restart_intensity(void **state)
{
    (void)state;
    fl_graph *g;
    fl_runtime *rt = run_trapper(&g, "trap_every=1", 3, 20);
    fl_stage_stats t = stats_of(rt, 1);
    assert_int_equal(t.stopped, 1);
    assert_int_equal(t.traps, 4);
    assert_int_equal(t.restarts, 3);
    assert_int_equal(t.in, 4);
    assert_int_equal(t.dropped, 16);
    assert_int_equal(atomic_load(&tc("t")->creates), 4);
    assert_int_equal(stats_of(rt, 2).in, 0);
    assert_int_equal(count_lines(dl_path, NULL), 4);
    fl_runtime_free(rt);
    unlink(dl_path);
    gfree(g);
}

/* kv state survives trap-restarts: the counter reaches every message. */
static void test_kv_survives_restart(void **state)
{
    (void)state;
    fl_graph *g;
    fl_runtime *rt = run_trapper(&g, "trap_every=5 kv=1", 100, 30);
    assert_int_equal(stats_of(rt, 1).restarts, 6);
    assert_int_equal(atomic_load(&tc("t")->kvlast), 30);
    fl_runtime_free(rt);
    unlink(dl_path);
    gfree(g);
}

/* The kv table itself: limits and deletion. */
static void test_kv_limits(void **state)
{
    (void)state;
    fl__kv kv;
    char key[80], buf[8];
    memset(&kv, 0, sizeof kv);
    assert_int_equal(fl__kv_get(&kv, "a", 1, buf, sizeof buf), IF_ENOTFOUND);
    assert_int_equal(fl__kv_set(&kv, "a", 1, "xyz", 3), IF_OK);
    assert_int_equal(fl__kv_get(&kv, "a", 1, buf, 2), 3);
    assert_memory_equal(buf, "xy", 2);
    assert_int_equal(fl__kv_set(&kv, "", 0, "x", 1), IF_EINVAL);
    memset(key, 'k', sizeof key);
    assert_int_equal(fl__kv_set(&kv, key, 65, "x", 1), IF_ETOOBIG);
    assert_int_equal(fl__kv_set(&kv, "big", 3, NULL, FL__KV_MAX_VAL + 1),
                     IF_ETOOBIG);
    for (unsigned i = 1; i < FL__KV_MAX_KEYS; i++) {
        int n = snprintf(key, sizeof key, "key%u", i);
        assert_int_equal(fl__kv_set(&kv, key, (size_t)n, &i, sizeof i), IF_OK);
    }
    assert_int_equal(fl__kv_set(&kv, "one-more", 8, "x", 1), IF_EFULL);
    for (unsigned i = 1; i < FL__KV_MAX_KEYS; i += 2) {
        int n = snprintf(key, sizeof key, "key%u", i);
        assert_int_equal(fl__kv_del(&kv, key, (size_t)n), IF_OK);
    }
    for (unsigned i = 2; i < FL__KV_MAX_KEYS; i += 2) {
        unsigned v = 0;
        int n = snprintf(key, sizeof key, "key%u", i);
        assert_int_equal(fl__kv_get(&kv, key, (size_t)n, &v, sizeof v),
                         (int)sizeof v);
        assert_int_equal(v, i);
    }
    assert_int_equal(fl__kv_del(&kv, "key1", 4), IF_ENOTFOUND);
    assert_int_equal(kv.count, 1 + (FL__KV_MAX_KEYS - 1) / 2);
    fl__kv_fini(&kv);
}

/* ------------------------------------------------------------------------ */
/* Stop.                                                                    */

/* Stopping a loaded serial pipeline loses nothing: every reading produced
 * reaches the sink. */
static void test_clean_stop(void **state)
{
    (void)state;
    fl_run_opts o;
    setup_opts(&o);
    o.queue_capacity = 8192;
    o.time_scale = 100;
    fl_graph *g = gnew(4);
    uint32_t src = gstage(g, "src", FL__LAYER_DEVICE, "emit=2");
    uint32_t a = gstage(g, "a", FL__LAYER_EDGE, "delay_us=300");
    uint32_t b = gstage(g, "b", FL__LAYER_EDGE, "");
    uint32_t sink = gstage(g, "sink", FL__LAYER_CLOUD, "emit=0");
    gedge(g, src, a, 1);
    gedge(g, a, b, 1);
    gedge(g, b, sink, 1);
    gsource(g, src, FL__MODE_PUSH, 100000000ull, 0, 0, 0); /* 1 ms */
    fl_runtime *rt = start(g, &o);
    sleep_ms(300);
    assert_true(stats_of(rt, a).queue_depth > 0); /* in flight at stop */
    assert_int_equal(fl_runtime_stop(rt, 15000), FL_OK);
    fl_run_stats tot;
    fl_runtime_totals(rt, &tot);
    assert_int_equal(stats_of(rt, src).dropped, 0);
    assert_int_equal(tot.produced, atomic_load(&tc("src")->emitted));
    assert_int_equal(stats_of(rt, sink).in, tot.produced);
    assert_int_equal(tot.delivered, tot.produced);
    assert_int_equal(stats_of(rt, a).queue_depth, 0);
    fl_runtime_free(rt);
    gfree(g);
}

/* Unknown stage kinds and bad init are reported before anything runs. */
static void test_new_errors(void **state)
{
    (void)state;
    fl_run_opts o;
    fl_runtime *rt = NULL;
    char err[256];
    setup_opts(&o);
    fl_graph *g = gnew(1);
    gstage(g, "x", FL__LAYER_EDGE, "");
    free(g->stages[0].kind);
    g->stages[0].kind = dupstr("nosuchkind");
    fl__rt_set_ops_lookup(t_find);
    assert_int_equal(fl_runtime_new(g, &o, &rt, err, sizeof err), FL_CHECK);
    assert_null(rt);
    assert_string_equal(err, "stage x: unknown kind 'nosuchkind'");
    fl_runtime_free(NULL);
    gfree(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_rate),
        cmocka_unit_test(test_pull_interval),
        cmocka_unit_test(test_demand_credits),
        cmocka_unit_test(test_policy_block),
        cmocka_unit_test(test_policy_drop_oldest),
        cmocka_unit_test(test_policy_sample),
        cmocka_unit_test(test_serial_parallel),
        cmocka_unit_test(test_actuation_origin),
        cmocka_unit_test(test_actuation_oneway),
        cmocka_unit_test(test_trap_restart),
        cmocka_unit_test(test_restart_intensity),
        cmocka_unit_test(test_kv_survives_restart),
        cmocka_unit_test(test_kv_limits),
        cmocka_unit_test(test_clean_stop),
        cmocka_unit_test(test_new_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
