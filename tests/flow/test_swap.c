/*
 * test_swap.c - unit tests of live update (src/flow/rt_swap.c): a wasm
 * stage (tests/flow/stages/sw_stage.c, built in variants) between a
 * test-double demand source on 4 devices and a test-double sink that
 * accounts for every message (origin, seq, version, kv counter).  Swap
 * under load, state carried over, rollback of a trapping version, refusal
 * of a failing init, 1,000 swaps under load, and the swap latency.
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

#include "graph_fixture.h"
#include "rt_int.h"

#define NDEV 4
#define MAXVER 1100

/* ---- The sink's accounting (written by one worker, read after stop). -- */

static _Atomic uint64_t last_seq[NDEV], received, bad_order, bad_count;
static _Atomic uint64_t last_n, first_seen_ns[MAXVER];
static _Atomic int64_t last_from;
static _Atomic uint32_t max_version_seen, after_rollback_bad;
static _Atomic int rollback_mark; /* 1: any version != 1 now is an error */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void reset(void)
{
    for (int i = 0; i < NDEV; i++)
        atomic_store(&last_seq[i], 0);
    for (int i = 0; i < MAXVER; i++)
        atomic_store(&first_seen_ns[i], 0);
    atomic_store(&received, 0);
    atomic_store(&bad_order, 0);
    atomic_store(&bad_count, 0);
    atomic_store(&last_n, 0);
    atomic_store(&last_from, -1);
    atomic_store(&max_version_seen, 0);
    atomic_store(&after_rollback_bad, 0);
    atomic_store(&rollback_mark, 0);
}

struct fl__inst {
    const if_host_api *api;
    void *ctx;
    int sink;
};

static fl_status d_create(const fl__stage *d, const if_host_api *api,
                          void *ctx, int32_t device, fl__inst **out,
                          char *err, size_t errlen)
{
    fl__inst *in = calloc(1, sizeof *in);
    (void)device, (void)err, (void)errlen;
    if (!in)
        return FL_NOMEM;
    in->api = api;
    in->ctx = ctx;
    in->sink = strcmp(d->name, "sink") == 0;
    *out = in;
    return FL_OK;
}

static fl_status d_produce(fl__inst *in, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    in->api->emit(in->ctx, NULL, 0, "r", 1);
    return FL_OK;
}

/* The sink: per origin, seqs must come 1, 2, 3...; the wasm stage's kv
 * counter must grow by one per message (its state is never lost). */
static fl_status d_process(fl__inst *in, const uint8_t *msg, size_t len,
                           char *err, size_t errlen)
{
    char buf[64];
    unsigned v = 0, n = 0;
    int from = -1;
    (void)err, (void)errlen;
    int64_t o = in->api->meta(in->ctx, IF_META_ORIGIN);
    uint64_t seq = (uint64_t)in->api->meta(in->ctx, IF_META_SEQ);
    snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)msg);
    if (sscanf(buf, "%u %u %d", &v, &n, &from) != 3 || o < 0 || o >= NDEV)
        return FL_STAGE;
    if (seq != atomic_load(&last_seq[o]) + 1)
        atomic_fetch_add(&bad_order, 1);
    atomic_store(&last_seq[o], seq);
    if (n != atomic_load(&last_n) + 1)
        atomic_fetch_add(&bad_count, 1);
    atomic_store(&last_n, n);
    atomic_store(&last_from, from);
    if (v < MAXVER && !atomic_load(&first_seen_ns[v]))
        atomic_store(&first_seen_ns[v], now_ns());
    if (v > atomic_load(&max_version_seen))
        atomic_store(&max_version_seen, v);
    if (atomic_load(&rollback_mark) && v != 1)
        atomic_fetch_add(&after_rollback_bad, 1);
    atomic_fetch_add(&received, 1);
    return FL_OK;
}

static void d_destroy(fl__inst *in) { free(in); }

static const fl__stage_ops d_ops = {"d", "test", "test", NULL, d_create,
                                    d_process, d_produce, NULL, d_destroy};

static const fl__stage_ops *find(const char *kind)
{
    return strcmp(kind, "d") == 0 ? &d_ops : fl__stage_ops_find(kind);
}

/* ---- Graph: src (device, demand) ~> mid (wasm, edge) ~> sink. -------- */

static fl_graph *make_graph(void)
{
    fl_graph *g = tg_graph_new("swap.flow", 3);
    tg_devices(g, NDEV);
    tg_add_stage(g, "src", FL__LAYER_DEVICE, "d", NULL, NDEV);
    tg_add_stage(g, "mid", FL__LAYER_EDGE, "wasm", SW_DIR "/sw_v.wasm", 1)
        ->need_caps = IF_CAP_PROCESS;
    tg_add_stage(g, "sink", FL__LAYER_CLOUD, "d", NULL, 1);
    tg_chain(g);
    tg_demand_source(g, 0, 8, 0);
    return g;
}

/* A test stage module of SW_DIR (malloc'ed). */
static uint8_t *slurp(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", SW_DIR, name);
    return tg_slurp(path, len);
}

static char dl_path[64];

static fl_runtime *start(fl_graph *g)
{
    fl_run_opts o;
    fl_runtime *rt = NULL;
    char err[256];
    reset();
    fl_run_opts_default(&o);
    o.workers = 2;
    snprintf(dl_path, sizeof dl_path, "/tmp/isoflow_swap_dl_%ld.jsonl",
             (long)getpid());
    unlink(dl_path);
    o.dead_letter = dl_path;
    fl__rt_set_ops_lookup(find);
    fl_status s = fl_runtime_new(g, &o, &rt, err, sizeof err);
    if (s != FL_OK)
        fail_msg("fl_runtime_new: %s", err);
    assert_int_equal(fl_runtime_start(rt), FL_OK);
    return rt;
}

/* Stops (complete drain) and checks the accounting: every produced
 * message arrived once, in order per device; returns what was produced. */
static uint64_t stop_and_account(fl_runtime *rt, uint64_t lost_expected)
{
    fl_run_stats t;
    assert_int_equal(fl_runtime_stop(rt, 5000), FL_OK);
    fl_runtime_totals(rt, &t);
    uint64_t sum = 0;
    for (int i = 0; i < NDEV; i++)
        sum += atomic_load(&last_seq[i]);
    assert_true(t.produced > 0);
    assert_int_equal(sum, t.produced);       /* seqs 1..last per device */
    assert_int_equal(atomic_load(&received) + lost_expected, t.produced);
    if (!lost_expected)
        assert_int_equal(atomic_load(&bad_order), 0);
    return t.produced;
}

static int dl_lines(void)
{
    FILE *f = fopen(dl_path, "r");
    int n = 0, c;
    if (!f)
        return 0;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

/* ---- Tests. ------------------------------------------------------------ */

/* Swap under continuous load, state carried: the kv counter continues
 * across the switch and migrate saw from_version 1. */
static void test_swap_state(void **state)
{
    (void)state;
    fl_graph *g = make_graph();
    fl_runtime *rt = start(g);
    size_t len;
    uint8_t *mig = slurp("sw_mig.wasm", &len);
    fl_swap_result r;
    fl_swap_status st;
    tg_sleep_ms(100);
    assert_true(atomic_load(&received) > 0);
    assert_int_equal(fl_runtime_swap(rt, "mid", mig, len, 2, &r), FL_OK);
    assert_int_equal(r.version, 2);
    assert_int_equal(r.from_version, 1);
    assert_int_equal(r.instances, 1);
    assert_string_equal(r.reason, "");
    tg_sleep_ms(100);
    assert_int_equal(fl_runtime_swap_status(rt, "mid", &st), FL_OK);
    assert_int_equal(st.version, 2);
    assert_int_equal(st.swaps, 1);
    assert_true(st.state == FL_SWAP_WATCHING || st.state == FL_SWAP_ACTIVE);
    stop_and_account(rt, 0);
    assert_int_equal(atomic_load(&bad_count), 0); /* counter continued */
    assert_int_equal(atomic_load(&last_n), atomic_load(&received));
    assert_int_equal(atomic_load(&last_from), 1); /* migrate(1) ran */
    assert_int_equal(atomic_load(&max_version_seen), 2);
    assert_int_equal(fl_runtime_swap_status(rt, "nope", &st), FL_ARG);
    fl_runtime_free(rt);
    free(mig);
    tg_graph_free(g);
}

/* fl__code_load keeps the instance its checks ran on: the first
 * fl__code_instantiate hands it out (no second instantiation on a
 * deploy's path), the next ones make new ones; one never used is freed
 * with the code (ASan's leak check). */
static void test_code_spare_instance(void **state)
{
    (void)state;
    fl_graph *g = make_graph();
    fl_runtime *rt = start(g);
    size_t len;
    uint8_t *mig = slurp("sw_mig.wasm", &len);
    const fl__stage *d = NULL;
    uint32_t idx = 0, ninst = 0;
    bool stopped = false;
    fl__swst *sw = NULL;
    fl__code *c = NULL, *c2 = NULL;
    fl__inst *a = NULL, *b = NULL;
    char err[256];
    assert_true(fl__rt_stage_info(rt, "mid", &idx, &d, &ninst, &stopped,
                                  &sw));
    assert_int_equal(fl__code_load(d, mig, len, &c, err, sizeof err), FL_OK);
    assert_int_equal(fl__code_instantiate(d, c, &a, err, sizeof err), FL_OK);
    assert_int_equal(fl__code_instantiate(d, c, &b, err, sizeof err), FL_OK);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    fl__wasm_inst_free(a);
    fl__wasm_inst_free(b);
    fl__code_release(c);
    assert_int_equal(fl__code_load(d, mig, len, &c2, err, sizeof err), FL_OK);
    fl__code_release(c2); /* its spare never used */
    stop_and_account(rt, 0);
    fl_runtime_free(rt);
    free(mig);
    tg_graph_free(g);
}

/* A failing init refuses the swap and changes nothing (not even the kv
 * value the failed init wrote). */
static void test_reject_bad_init(void **state)
{
    (void)state;
    fl_graph *g = make_graph();
    fl_runtime *rt = start(g);
    size_t len;
    uint8_t *bad = slurp("sw_badinit.wasm", &len);
    uint8_t junk[8] = {0, 'a', 's', 'm', 1, 0, 0, 7};
    fl_swap_result r;
    fl_swap_status st;
    tg_sleep_ms(50);
    assert_int_equal(fl_runtime_swap(rt, "mid", bad, len, 2, &r), FL_CHECK);
    assert_non_null(strstr(r.reason, "stage_init returned -7"));
    assert_int_equal(r.version, 1);
    assert_int_equal(fl_runtime_swap(rt, "mid", junk, sizeof junk, 3, &r),
                     FL_CHECK);
    assert_true(r.reason[0] != '\0');
    assert_int_equal(fl_runtime_swap(rt, "src", bad, len, 3, &r), FL_ARG);
    assert_non_null(strstr(r.reason, "not a wasm stage"));
    assert_int_equal(fl_runtime_swap(rt, "zz", bad, len, 3, &r), FL_ARG);
    assert_string_equal(r.reason, "no stage named 'zz'");
    tg_sleep_ms(50);
    assert_int_equal(fl_runtime_swap_status(rt, "mid", &st), FL_OK);
    assert_int_equal(st.state, FL_SWAP_REJECTED);
    assert_int_equal(st.version, 1);
    assert_int_equal(st.swaps, 0);
    assert_int_equal(st.rejected, 2); /* the "src" and "zz" refusals are not mid's */
    stop_and_account(rt, 0);
    assert_int_equal(atomic_load(&bad_count), 0); /* no 999999 */
    assert_int_equal(atomic_load(&max_version_seen), 1);
    fl_runtime_free(rt);
    free(bad);
    tg_graph_free(g);
}

/* A version trapping on its first message is rolled back: that message is
 * dead-lettered, version 1 processes everything after, the status says
 * why, and the same module is not swapped in again. */
static void test_rollback(void **state)
{
    (void)state;
    fl_graph *g = make_graph();
    fl_runtime *rt = start(g);
    size_t len;
    uint8_t *trap = slurp("sw_trap.wasm", &len);
    fl_swap_result r;
    fl_swap_status st;
    tg_sleep_ms(50);
    assert_int_equal(fl_runtime_swap(rt, "mid", trap, len, 2, &r), FL_OK);
    for (int i = 0; i < 200; i++) {
        fl_runtime_swap_status(rt, "mid", &st);
        if (st.state == FL_SWAP_ROLLED_BACK)
            break;
        tg_sleep_ms(5);
    }
    assert_int_equal(st.state, FL_SWAP_ROLLED_BACK);
    assert_int_equal(st.version, 1);
    assert_int_equal(st.last_version, 2);
    assert_int_equal(st.rollbacks, 1);
    assert_non_null(strstr(st.reason, "version 2 trapped"));
    assert_non_null(strstr(st.reason, "back to version 1"));
    atomic_store(&rollback_mark, 1);
    tg_sleep_ms(100);
    assert_int_equal(fl_runtime_swap(rt, "mid", trap, len, 3, &r), FL_ARG);
    assert_non_null(strstr(r.reason, "not swapped in again"));
    stop_and_account(rt, 1);
    assert_int_equal(dl_lines(), 1);
    assert_int_equal(atomic_load(&after_rollback_bad), 0);
    assert_int_equal(atomic_load(&max_version_seen), 1);
    /* the kv counter kept going over the trapped message's absence */
    assert_int_equal(atomic_load(&last_n), atomic_load(&received));
    fl_runtime_free(rt);
    free(trap);
    tg_graph_free(g);
    unlink(dl_path);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* 1,000 consecutive swaps under load, alternating two modules: nothing
 * lost or duplicated, order kept, state continuous; the latency from the
 * request to the first message processed by the new version. */
static void test_thousand_swaps(void **state)
{
    (void)state;
    fl_graph *g = make_graph();
    fl_runtime *rt = start(g);
    size_t la, lb;
    uint8_t *a = slurp("sw_v.wasm", &la), *b = slurp("sw_mig.wasm", &lb);
    static uint64_t t_req[MAXVER], lat[MAXVER];
    fl_swap_policy pol = {0, 0, 0}; /* no rollback window: pure swaps */
    fl_runtime_swap_policy(rt, &pol);
    uint32_t nlat = 0;
    tg_sleep_ms(20);
    for (uint32_t v = 2; v < 1002; v++) {
        fl_swap_result r;
        uint64_t seen = atomic_load(&received);
        t_req[v] = now_ns();
        fl_status s = fl_runtime_swap(rt, "mid", v % 2 ? a : b,
                                      v % 2 ? la : lb, v, &r);
        if (s != FL_OK)
            fail_msg("swap %u: %s", v, r.reason);
        /* wait for the new version's first message (bounded) */
        for (int i = 0; i < 20000 && !atomic_load(&first_seen_ns[v]); i++) {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
        (void)seen;
        if (atomic_load(&first_seen_ns[v]))
            lat[nlat++] = atomic_load(&first_seen_ns[v]) - t_req[v];
    }
    uint64_t produced = stop_and_account(rt, 0);
    assert_int_equal(atomic_load(&bad_count), 0);
    assert_int_equal(atomic_load(&max_version_seen), 1001);
    assert_true(nlat >= 990);
    qsort(lat, nlat, sizeof lat[0], cmp_u64);
    print_message("1000 swaps under load: %llu messages, none lost; swap "
                  "latency (request -> first message on the new version) "
                  "p50 %.1f us, p99 %.1f us\n",
                  (unsigned long long)produced, (double)lat[nlat / 2] / 1e3,
                  (double)lat[(nlat * 99) / 100] / 1e3);
    fl_runtime_free(rt);
    free(a);
    free(b);
    tg_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swap_state),
        cmocka_unit_test(test_reject_bad_init),
        cmocka_unit_test(test_code_spare_instance),
        cmocka_unit_test(test_rollback),
        cmocka_unit_test(test_thousand_swaps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
