/*
 * test_wasm_threads.c - the engine under threads: one module loaded once and
 * instantiated 100 times (50 stores per thread, 2 threads running at the
 * same time), each instance doing real work in its own memory; and a host
 * function that calls back into the guest (guest -> host -> guest).
 * Usage: test_wasm_threads GUEST.wasm (tests/wasi/freestanding/
 * threads_guest.c compiled freestanding).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wasm.h"

#define NTHREADS 2
#define PER_THREAD 50
#define ROUNDS 16u
#define NWORDS 4096u /* as in threads_guest.c */

static const char *guest_path;

/* The guest's checksum() computed natively: the expected values. */
static uint32_t ref_checksum(uint32_t seed, uint32_t rounds)
{
    static uint32_t buf[NWORDS]; /* only used by the main thread */
    uint32_t x = seed, h = 2166136261u;
    for (uint32_t i = 0; i < NWORDS; i++) {
        x = x * 1664525u + 1013904223u;
        buf[i] = x;
    }
    for (uint32_t r = 0; r < rounds; r++)
        for (uint32_t i = 0; i < NWORDS; i++) {
            h ^= buf[i] + r;
            h *= 16777619u;
        }
    return h;
}

/* Reads the whole file into a malloc'ed buffer (caller frees); NULL on
 * failure. */
static uint8_t *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 &&
        fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
        *len = (size_t)n;
    }
    fclose(f);
    return buf;
}

static iw_module *load_guest(void)
{
    size_t len = 0;
    uint8_t *bytes = read_all(guest_path, &len);
    iw_module *m = NULL;
    char err[256] = "";
    assert_non_null(bytes);
    if (iw_module_load(bytes, len, &m, err, sizeof err) != IW_OK)
        fail_msg("loading %s: %s", guest_path, err);
    free(bytes);
    return m;
}

/* env.host_twice(x): calls the calling instance's export square(x) and
 * returns twice its result.  `user` counts the calls (an int per store). */
static iw_status host_twice(iw_call *call, const iw_val *args,
                            iw_val *results, void *user)
{
    iw_func *sq = iw_instance_func(iw_call_instance(call), "square");
    iw_val r = {0};
    iw_status st;
    if (!sq)
        return iw_call_trap(call, "no export 'square'");
    st = iw_call_func(sq, args, 1, &r, 1);
    if (st != IW_OK)
        return st;
    (*(int *)user)++;
    results[0].of.i32 = (int32_t)(2u * (uint32_t)r.of.i32);
    return IW_OK;
}

static const uint8_t I32[] = {IW_I32};

/* Creates a store with the guest instantiated, env.host_twice linked with
 * `counter` as its user pointer.  Returns IW_OK and *out_store (caller frees
 * with iw_store_free) or the failing status with a message in err. */
static iw_status new_instance(const iw_module *m, int *counter,
                              iw_store **out_store, iw_instance **out_inst,
                              char *err, size_t errlen)
{
    iw_store *s = iw_store_new(NULL);
    iw_extern imp;
    iw_status st;
    *out_store = NULL;
    if (!s) {
        snprintf(err, errlen, "iw_store_new failed");
        return IW_NOMEM;
    }
    imp.kind = IW_EXTERN_FUNC;
    imp.of.func = iw_func_new_host(s, I32, 1, I32, 1, host_twice, counter);
    if (!imp.of.func) {
        iw_store_free(s);
        snprintf(err, errlen, "iw_func_new_host failed");
        return IW_NOMEM;
    }
    st = iw_instantiate(s, m, &imp, 1, out_inst, err, errlen);
    if (st != IW_OK) {
        iw_store_free(s);
        return st;
    }
    *out_store = s;
    return IW_OK;
}

/* Calls export `name` of `inst` (in store `s`) with one or two i32
 * arguments; returns the i32 result, or records a failure message in err
 * and returns 0. */
static uint32_t call_u32(iw_store *s, iw_instance *inst, const char *name,
                         uint32_t a, uint32_t b, int nargs, char *err,
                         size_t errlen)
{
    iw_func *f = iw_instance_func(inst, name);
    iw_val args[2], r = {0};
    iw_status st;
    if (!f) {
        snprintf(err, errlen, "no export '%s'", name);
        return 0;
    }
    args[0].type = args[1].type = IW_I32;
    args[0].of.i32 = (int32_t)a;
    args[1].of.i32 = (int32_t)b;
    st = iw_call_func(f, args, (size_t)nargs, &r, 1);
    if (st != IW_OK) {
        snprintf(err, errlen, "%s: %s (%s)", name, iw_status_name(st),
                 iw_store_errmsg(s));
        return 0;
    }
    return (uint32_t)r.of.i32;
}

/* One worker thread's share: 50 stores, all instantiated before any runs. */
typedef struct worker {
    int id;
    const iw_module *m;
    pthread_barrier_t *barrier;
    uint32_t sums[PER_THREAD];   /* checksum(seed(id, k), ROUNDS) */
    uint32_t via[PER_THREAD];    /* via_host(seed(id, k) % 50000) */
    int host_calls[PER_THREAD];  /* host_twice calls per store */
    int instantiated;            /* stores created successfully */
    struct timespec t0, t1;      /* the running phase */
    char err[256];               /* first failure, "" when none */
} worker;

static uint32_t seed_of(int id, int k)
{
    return (uint32_t)(id * 1000 + k + 1);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    iw_store *stores[PER_THREAD] = {0};
    iw_instance *insts[PER_THREAD] = {0};
    for (int k = 0; k < PER_THREAD; k++) {
        if (new_instance(w->m, &w->host_calls[k], &stores[k], &insts[k],
                         w->err, sizeof w->err) != IW_OK)
            break;
        w->instantiated++;
    }
    /* Both threads hold their 50 live instances before either runs. */
    pthread_barrier_wait(w->barrier);
    clock_gettime(CLOCK_MONOTONIC, &w->t0);
    for (int k = 0; k < w->instantiated && !w->err[0]; k++) {
        uint32_t seed = seed_of(w->id, k);
        w->sums[k] = call_u32(stores[k], insts[k], "checksum", seed, ROUNDS,
                              2, w->err, sizeof w->err);
        w->via[k] = call_u32(stores[k], insts[k], "via_host", seed % 50000u,
                             0, 1, w->err, sizeof w->err);
    }
    clock_gettime(CLOCK_MONOTONIC, &w->t1);
    for (int k = 0; k < PER_THREAD; k++)
        iw_store_free(stores[k]);
    return NULL;
}

static double secs(struct timespec t)
{
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* 100 instances of one module, 50 per thread in two concurrent threads:
 * every checksum and every host round trip equals the native result. */
static void test_hundred_instances_two_threads(void **state)
{
    iw_module *m = load_guest();
    pthread_barrier_t barrier;
    pthread_t th[NTHREADS];
    worker *w = calloc(NTHREADS, sizeof *w);
    (void)state;
    assert_non_null(w);
    assert_int_equal(pthread_barrier_init(&barrier, NULL, NTHREADS), 0);
    for (int t = 0; t < NTHREADS; t++) {
        w[t].id = t;
        w[t].m = m;
        w[t].barrier = &barrier;
        assert_int_equal(pthread_create(&th[t], NULL, worker_main, &w[t]), 0);
    }
    for (int t = 0; t < NTHREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    pthread_barrier_destroy(&barrier);

    int checked = 0;
    for (int t = 0; t < NTHREADS; t++) {
        if (w[t].err[0])
            fail_msg("thread %d: %s", t, w[t].err);
        assert_int_equal(w[t].instantiated, PER_THREAD);
        for (int k = 0; k < PER_THREAD; k++) {
            uint32_t seed = seed_of(t, k), x = seed % 50000u;
            assert_int_equal(w[t].sums[k], ref_checksum(seed, ROUNDS));
            assert_int_equal(w[t].via[k], 2u * x * x + 1u);
            assert_int_equal(w[t].host_calls[k], 1);
            checked++;
        }
    }
    assert_int_equal(checked, NTHREADS * PER_THREAD);
    /* Distinct seeds gave distinct sums: no instance saw another's memory. */
    for (int k = 1; k < PER_THREAD; k++)
        assert_int_not_equal(w[0].sums[k], w[0].sums[k - 1]);
    /* The two running phases overlapped in time. */
    assert_true(secs(w[0].t0) < secs(w[1].t1));
    assert_true(secs(w[1].t0) < secs(w[0].t1));
    free(w);
    iw_module_free(m);
}

/* guest via_host -> host host_twice -> guest square, in one store, with
 * values that wrap around 2^32; the store stays usable for direct calls. */
static void test_host_calls_back_into_guest(void **state)
{
    static const uint32_t xs[] = {0u, 1u, 7u, 46341u, 65535u, 0x80000000u,
                                  0xFFFFFFFFu};
    iw_module *m = load_guest();
    iw_store *s = NULL;
    iw_instance *inst = NULL;
    int calls = 0;
    char err[256] = "";
    (void)state;
    if (new_instance(m, &calls, &s, &inst, err, sizeof err) != IW_OK)
        fail_msg("instantiate: %s", err);
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        uint32_t x = xs[i];
        assert_int_equal(
            call_u32(s, inst, "via_host", x, 0, 1, err, sizeof err),
            2u * x * x + 1u);
        assert_string_equal(err, "");
        assert_int_equal(
            call_u32(s, inst, "square", x, 0, 1, err, sizeof err), x * x);
    }
    assert_int_equal(calls, (int)(sizeof xs / sizeof xs[0]));
    assert_int_equal(
        call_u32(s, inst, "checksum", 42u, 2u, 2, err, sizeof err),
        ref_checksum(42u, 2u));
    iw_store_free(s);
    iw_module_free(m);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hundred_instances_two_threads),
        cmocka_unit_test(test_host_calls_back_into_guest),
    };
    if (argc != 2) {
        fprintf(stderr, "usage: %s GUEST.wasm\n", argv[0]);
        return 2;
    }
    guest_path = argv[1];
    return cmocka_run_group_tests(tests, NULL, NULL);
}
