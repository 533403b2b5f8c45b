/*
 * test_wasm_limits.c - cmocka tests of the engine's limits and metering:
 * exact fuel accounting, suspending and resuming a call, interrupts from
 * another thread, caps on memory, tables, call depth, value stack and
 * host re-entry, on one hand-assembled module.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <pthread.h>

#include <cmocka.h>

#include "wasm.h"

/* ------------------------------------------------------------------------ */
/* The module (assembled with wat2wasm from this text):
 *
 * (module
 *   (import "env" "host" (func $host (param i32) (result i32)))
 *   (memory 1)
 *   (table $t 1 funcref)
 *   (func $seven (export "seven") (result i32) i32.const 7)
 *   (func (export "count") (param i32) (result i32) (local i32)
 *     (loop $l
 *       local.get 1 i32.const 1 i32.add local.tee 1
 *       local.get 0 i32.lt_u br_if $l)
 *     local.get 1)
 *   (func (export "calls") (param i32) (result i32) (local i32)
 *     (loop $l
 *       local.get 1 call $seven i32.add local.set 1
 *       local.get 0 i32.const 1 i32.sub local.tee 0 br_if $l)
 *     local.get 1)
 *   (func (export "spin") (loop $l br $l))
 *   (func $rec (export "rec") (param i32) (result i32)
 *     local.get 0 i32.eqz
 *     if (result i32) i32.const 0
 *     else local.get 0 i32.const 1 i32.sub call $rec i32.const 1 i32.add end)
 *   (func (export "grow") (param i32) (result i32) local.get 0 memory.grow)
 *   (func (export "tgrow") (param i32) (result i32)
 *     ref.null func local.get 0 table.grow $t)
 *   (func (export "reenter") (param i32) (result i32) local.get 0 call $host))
 *
 * Fuel: a call from the host and every call instruction cost one unit, so
 * does every execution of a loop head.  count(N) (N >= 1) runs its loop
 * head N times: N + 1 units.  calls(N) runs N loop heads and N calls:
 * 2N + 1 units.  rec(N) makes N + 1 calls: N + 1 units.
 */
static const uint8_t limits_wasm[] = {
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, /* magic, version */
    /* type section, 13 bytes */
    0x01, 0x0d, 0x03, 0x60, 0x01, 0x7f, 0x01, 0x7f, 0x60, 0x00, 0x01, 0x7f,
    0x60, 0x00, 0x00,
    /* import section, 12 bytes */
    0x02, 0x0c, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x04, 0x68, 0x6f, 0x73, 0x74,
    0x00, 0x00,
    /* function section, 9 bytes */
    0x03, 0x09, 0x08, 0x01, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
    /* table section, 4 bytes */
    0x04, 0x04, 0x01, 0x70, 0x00, 0x01,
    /* memory section, 3 bytes */
    0x05, 0x03, 0x01, 0x00, 0x01,
    /* export section, 63 bytes */
    0x07, 0x3f, 0x08, 0x05, 0x73, 0x65, 0x76, 0x65, 0x6e, 0x00, 0x01, 0x05,
    0x63, 0x6f, 0x75, 0x6e, 0x74, 0x00, 0x02, 0x05, 0x63, 0x61, 0x6c, 0x6c,
    0x73, 0x00, 0x03, 0x04, 0x73, 0x70, 0x69, 0x6e, 0x00, 0x04, 0x03, 0x72,
    0x65, 0x63, 0x00, 0x05, 0x04, 0x67, 0x72, 0x6f, 0x77, 0x00, 0x06, 0x05,
    0x74, 0x67, 0x72, 0x6f, 0x77, 0x00, 0x07, 0x07, 0x72, 0x65, 0x65, 0x6e,
    0x74, 0x65, 0x72, 0x00, 0x08,
    /* code section, 108 bytes */
    0x0a, 0x6c, 0x08, 0x04, 0x00, 0x41, 0x07, 0x0b, 0x15, 0x01, 0x01, 0x7f,
    0x03, 0x40, 0x20, 0x01, 0x41, 0x01, 0x6a, 0x22, 0x01, 0x20, 0x00, 0x49,
    0x0d, 0x00, 0x0b, 0x20, 0x01, 0x0b, 0x19, 0x01, 0x01, 0x7f, 0x03, 0x40,
    0x20, 0x01, 0x10, 0x01, 0x6a, 0x21, 0x01, 0x20, 0x00, 0x41, 0x01, 0x6b,
    0x22, 0x00, 0x0d, 0x00, 0x0b, 0x20, 0x01, 0x0b, 0x07, 0x00, 0x03, 0x40,
    0x0c, 0x00, 0x0b, 0x0b, 0x15, 0x00, 0x20, 0x00, 0x45, 0x04, 0x7f, 0x41,
    0x00, 0x05, 0x20, 0x00, 0x41, 0x01, 0x6b, 0x10, 0x05, 0x41, 0x01, 0x6a,
    0x0b, 0x0b, 0x06, 0x00, 0x20, 0x00, 0x40, 0x00, 0x0b, 0x09, 0x00, 0xd0,
    0x70, 0x20, 0x00, 0xfc, 0x0f, 0x00, 0x0b, 0x06, 0x00, 0x20, 0x00, 0x10,
    0x00, 0x0b,
};

/* What the imported host function does with its argument n. */
enum host_mode {
    HOST_REENTER, /* n > 0: returns reenter(n - 1) + 1; n == 0: returns 0 */
    HOST_SPIN,    /* calls spin() (re-entrantly) and returns its status */
    HOST_FUEL     /* records iw_store_get_fuel() and returns 0 */
};

typedef struct env {
    iw_module *mod;
    iw_store *s;
    iw_instance *inst;
    enum host_mode mode;
    iw_status nested_status; /* HOST_SPIN: what the nested call returned */
    int64_t seen_fuel;       /* HOST_FUEL */
    int host_calls;
} env;

static iw_val i32v(int32_t v)
{
    iw_val x;
    memset(&x, 0, sizeof x);
    x.type = IW_I32;
    x.of.i32 = v;
    return x;
}

/* The "env" "host" import; see enum host_mode. */
static iw_status host_fn(iw_call *call, const iw_val *args, iw_val *results,
                         void *user)
{
    env *e = user;
    iw_val r;
    iw_status st;

    (void)call;
    e->host_calls++;
    results[0] = i32v(0);
    switch (e->mode) {
    case HOST_REENTER:
        if (args[0].of.i32 == 0)
            return IW_OK;
        {
            iw_val a = i32v(args[0].of.i32 - 1);
            st = iw_call_func(iw_instance_func(e->inst, "reenter"), &a, 1,
                              &r, 1);
        }
        if (st != IW_OK)
            return st; /* the trap stays recorded in the store */
        results[0] = i32v(r.of.i32 + 1);
        return IW_OK;
    case HOST_SPIN:
        e->nested_status =
            iw_call_func(iw_instance_func(e->inst, "spin"), NULL, 0, NULL, 0);
        return e->nested_status;
    case HOST_FUEL:
        e->seen_fuel = iw_store_get_fuel(iw_call_store(call));
        return IW_OK;
    }
    return IW_OK;
}

/* Loads the module into a new store made with cfg (NULL: defaults). */
static env *env_new(const iw_config *cfg)
{
    char err[256];
    static const uint8_t p[1] = {IW_I32}, r[1] = {IW_I32};
    iw_extern imp;
    env *e = test_calloc(1, sizeof *e);

    assert_non_null(e);
    assert_int_equal(iw_module_load(limits_wasm, sizeof limits_wasm, &e->mod,
                                     err, sizeof err),
                     IW_OK);
    e->s = iw_store_new(cfg);
    assert_non_null(e->s);
    imp.kind = IW_EXTERN_FUNC;
    imp.of.func = iw_func_new_host(e->s, p, 1, r, 1, host_fn, e);
    assert_non_null(imp.of.func);
    assert_int_equal(
        iw_instantiate(e->s, e->mod, &imp, 1, &e->inst, err, sizeof err),
        IW_OK);
    return e;
}

static void env_free(env *e)
{
    iw_store_free(e->s);
    iw_module_free(e->mod);
    test_free(e);
}

static int setup(void **state)
{
    *state = env_new(NULL);
    return 0;
}

static int teardown(void **state)
{
    env_free(*state);
    return 0;
}

/* Calls export `name` (no argument when arg is NULL) expecting one i32
 * result; returns the status and stores the result in *r. */
static iw_status call_i32(env *e, const char *name, const int32_t *arg,
                          int32_t *r)
{
    iw_val a, out;
    iw_func *f = iw_instance_func(e->inst, name);
    iw_status st;

    assert_non_null(f);
    if (arg)
        a = i32v(*arg);
    memset(&out, 0, sizeof out);
    st = iw_call_func(f, arg ? &a : NULL, arg ? 1 : 0, &out, 1);
    if (st == IW_OK) {
        assert_int_equal(out.type, IW_I32);
        *r = out.of.i32;
    }
    return st;
}

/* One-argument shorthand. */
static iw_status call1(env *e, const char *name, int32_t arg, int32_t *r)
{
    return call_i32(e, name, &arg, r);
}

/* Resumes the suspended call expecting one i32 result. */
static iw_status resume_i32(env *e, int32_t *r)
{
    iw_val out;
    iw_status st;

    memset(&out, 0, sizeof out);
    st = iw_store_resume(e->s, &out, 1);
    if (st == IW_OK) {
        assert_int_equal(out.type, IW_I32);
        *r = out.of.i32;
    }
    return st;
}

static void assert_trap(env *e, iw_trap t, const char *msg)
{
    assert_int_equal(iw_store_trap(e->s), t);
    assert_string_equal(iw_store_errmsg(e->s), msg);
}

/* ------------------------------------------------------------------------ */
/* Fuel.                                                                    */

/* count(N) needs exactly N + 1 units, below and above the refill
 * interval of the countdown (1024 checkpoints). */
static void test_fuel_exact_boundary(void **state)
{
    env *e = *state;
    static const int32_t ns[] = {1, 2, 10, 1022, 1023, 1024, 1025, 5000};
    int32_t r = 0;
    size_t i;

    assert_int_equal(iw_store_get_fuel(e->s), -1); /* off by default */
    for (i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        int32_t n = ns[i];

        iw_store_set_fuel(e->s, n + 1);
        assert_int_equal(call1(e, "count", n, &r), IW_OK);
        assert_int_equal(r, n);
        assert_int_equal(iw_store_get_fuel(e->s), 0);

        iw_store_set_fuel(e->s, n);
        assert_int_equal(call1(e, "count", n, &r), IW_TRAP);
        assert_trap(e, IW_TRAP_OUT_OF_FUEL, "out of fuel");
        assert_int_equal(iw_store_get_fuel(e->s), 0);
        iw_store_abandon(e->s);

        iw_store_set_fuel(e->s, n + 1 + 37);
        assert_int_equal(call1(e, "count", n, &r), IW_OK);
        assert_int_equal(iw_store_get_fuel(e->s), 37);
    }
    /* Fuel persists across calls: 37 left, calls(18) needs 37. */
    assert_int_equal(call1(e, "calls", 18, &r), IW_OK);
    assert_int_equal(r, 18 * 7);
    assert_int_equal(iw_store_get_fuel(e->s), 0);
    assert_int_equal(call_i32(e, "seven", NULL, &r), IW_TRAP);
    assert_trap(e, IW_TRAP_OUT_OF_FUEL, "out of fuel");

    iw_store_set_fuel(e->s, -5); /* off again */
    assert_int_equal(iw_store_get_fuel(e->s), -1);
    assert_int_equal(call1(e, "count", 3000, &r), IW_OK);
    assert_int_equal(r, 3000);
    assert_int_equal(iw_store_get_fuel(e->s), -1);
}

/* Inside a host function the remaining fuel is exact: the entry and the
 * call to the host have consumed 2 units. */
static void test_fuel_exact_in_host(void **state)
{
    env *e = *state;
    int32_t r = -1;

    e->mode = HOST_FUEL;
    iw_store_set_fuel(e->s, 100);
    assert_int_equal(call1(e, "reenter", 0, &r), IW_OK);
    assert_int_equal(r, 0);
    assert_int_equal(e->seen_fuel, 98);
    assert_int_equal(iw_store_get_fuel(e->s), 98);

    /* The same after the countdown has run for a while. */
    iw_store_set_fuel(e->s, 5000);
    assert_int_equal(call1(e, "count", 2000, &r), IW_OK);
    assert_int_equal(iw_store_get_fuel(e->s), 2999);
    assert_int_equal(call1(e, "reenter", 0, &r), IW_OK);
    assert_int_equal(e->seen_fuel, 2997);

    /* Suspended at the call to the host (1 unit: the entry only); the
     * resume makes that call. */
    e->host_calls = 0;
    iw_store_set_fuel(e->s, 1);
    assert_int_equal(call1(e, "reenter", 0, &r), IW_TRAP);
    assert_trap(e, IW_TRAP_OUT_OF_FUEL, "out of fuel");
    assert_int_equal(e->host_calls, 0);
    iw_store_set_fuel(e->s, 10);
    r = -1;
    assert_int_equal(resume_i32(e, &r), IW_OK);
    assert_int_equal(r, 0);
    assert_int_equal(e->host_calls, 1);
    assert_int_equal(e->seen_fuel, 9);
}

/* A call that runs out of fuel is suspended at a checkpoint; refilling
 * and resuming, whatever the budget per slice, gives the right result and
 * consumes exactly the fuel of an uninterrupted run. */
static void test_fuel_refill_resume(void **state)
{
    env *e = *state;
    int32_t budget, r;

    for (budget = 1; budget <= 12; budget++) {
        int64_t used = 0;
        int slices = 1;
        iw_status st;

        iw_store_set_fuel(e->s, budget);
        st = call1(e, "calls", 9, &r);
        while (st == IW_TRAP) {
            assert_trap(e, IW_TRAP_OUT_OF_FUEL, "out of fuel");
            assert_int_equal(iw_store_can_resume(e->s), 1);
            used += budget;
            iw_store_set_fuel(e->s, budget);
            st = resume_i32(e, &r);
            slices++;
        }
        assert_int_equal(st, IW_OK);
        assert_int_equal(r, 9 * 7);
        assert_int_equal(iw_store_can_resume(e->s), 0);
        used += budget - iw_store_get_fuel(e->s);
        assert_int_equal(used, 2 * 9 + 1);
        assert_int_equal(slices, (2 * 9 + 1 + budget - 1) / budget);
    }

    /* Suspended at calls 5, 10, ... deep in recursion; 5 units a slice:
     * rec(40) needs 41 units, the call and 8 resumes. */
    iw_store_set_fuel(e->s, 5);
    assert_int_equal(call1(e, "rec", 40, &r), IW_TRAP);
    budget = 0; /* counts resumes */
    while (iw_store_can_resume(e->s)) {
        iw_status st;
        iw_store_set_fuel(e->s, 5);
        st = resume_i32(e, &r);
        budget++;
        if (st == IW_OK)
            break;
        assert_trap(e, IW_TRAP_OUT_OF_FUEL, "out of fuel");
    }
    assert_int_equal(r, 40);
    assert_int_equal(budget, 8);
    assert_int_equal(iw_store_get_fuel(e->s), 4);

    /* No fuel at all: suspended before the entry, then completed. */
    iw_store_set_fuel(e->s, 0);
    assert_int_equal(call1(e, "count", 3, &r), IW_TRAP);
    assert_int_equal(iw_store_can_resume(e->s), 1);
    assert_int_equal(resume_i32(e, &r), IW_TRAP); /* still empty */
    assert_int_equal(iw_store_can_resume(e->s), 1);
    iw_store_set_fuel(e->s, 4);
    assert_int_equal(resume_i32(e, &r), IW_OK);
    assert_int_equal(r, 3);
    assert_int_equal(iw_store_get_fuel(e->s), 0);
}

/* Abandoning (explicitly or by a new call) frees the suspended call's
 * stack: thousands of abandoned calls leave the full stack available. */
static void test_abandon(void **state)
{
    env *e = *state;
    iw_val out;
    int32_t r = 0;
    int i;

    /* Nothing to resume. */
    assert_int_equal(iw_store_can_resume(e->s), 0);
    assert_int_equal(iw_store_resume(e->s, &out, 1), IW_ARG);
    assert_string_equal(iw_store_errmsg(e->s), "no suspended call to resume");

    iw_store_set_fuel(e->s, 50);
    assert_int_equal(call1(e, "rec", 100, &r), IW_TRAP);
    assert_int_equal(iw_store_can_resume(e->s), 1);
    /* Wrong result count: refused, still suspended. */
    assert_int_equal(iw_store_resume(e->s, NULL, 0), IW_ARG);
    assert_int_equal(iw_store_can_resume(e->s), 1);
    iw_store_abandon(e->s);
    assert_int_equal(iw_store_can_resume(e->s), 0);
    assert_int_equal(iw_store_resume(e->s, &out, 1), IW_ARG);

    for (i = 0; i < 3000; i++) {
        iw_store_set_fuel(e->s, 60);
        assert_int_equal(call1(e, "rec", 100, &r), IW_TRAP);
        assert_int_equal(iw_store_can_resume(e->s), 1);
    }
    /* The next call abandons the last one and has the whole stack. */
    iw_store_set_fuel(e->s, -1);
    assert_int_equal(call1(e, "rec", 9000, &r), IW_OK);
    assert_int_equal(r, 9000);
    assert_int_equal(iw_store_can_resume(e->s), 0);
    assert_int_equal(call_i32(e, "seven", NULL, &r), IW_OK);
    assert_int_equal(r, 7);
}

/* A fuel trap inside a re-entrant call (guest -> host -> guest) unwinds:
 * the host sees the trap and the outer call is not resumable. */
static void test_reentrant_trap_not_resumable(void **state)
{
    env *e = *state;
    int32_t r = 0;

    e->mode = HOST_SPIN;
    iw_store_set_fuel(e->s, 1000);
    assert_int_equal(call1(e, "reenter", 0, &r), IW_TRAP);
    assert_int_equal(e->nested_status, IW_TRAP);
    assert_trap(e, IW_TRAP_OUT_OF_FUEL, "out of fuel");
    assert_int_equal(iw_store_can_resume(e->s), 0);
    assert_int_equal(iw_store_get_fuel(e->s), 0);

    iw_store_set_fuel(e->s, 10);
    assert_int_equal(call_i32(e, "seven", NULL, &r), IW_OK);
    assert_int_equal(r, 7);
    assert_int_equal(iw_store_get_fuel(e->s), 9);
}

/* ------------------------------------------------------------------------ */
/* Interrupts.                                                              */

typedef struct watchdog {
    iw_store *s;
    struct timespec fired; /* when the interrupt was requested */
} watchdog;

/* Seconds from t0 to t1. */
static double elapsed(const struct timespec *t0, const struct timespec *t1)
{
    return (double)(t1->tv_sec - t0->tv_sec) +
           (double)(t1->tv_nsec - t0->tv_nsec) * 1e-9;
}

/* Thread body: waits 30 ms, then interrupts the store. */
static void *watchdog_main(void *arg)
{
    watchdog *w = arg;
    struct timespec d = {0, 30 * 1000 * 1000};
    nanosleep(&d, NULL);
    clock_gettime(CLOCK_MONOTONIC, &w->fired);
    iw_store_interrupt(w->s);
    return NULL;
}

/* An infinite loop is stopped by another thread within 100 ms; the call is
 * suspended (resumable) and the store stays usable. */
static void test_interrupt_from_thread(void **state)
{
    env *e = *state;
    iw_func *spin = iw_instance_func(e->inst, "spin");
    watchdog w;
    struct timespec stopped;
    pthread_t th;
    int32_t r = 0;
    int round;

    for (round = 0; round < 2; round++) {
        /* Round 0 with metering off, round 1 with a huge budget. */
        iw_store_set_fuel(e->s, round ? INT64_MAX / 2 : -1);
        memset(&w, 0, sizeof w);
        w.s = e->s;
        assert_non_null(spin);
        assert_int_equal(pthread_create(&th, NULL, watchdog_main, &w), 0);
        assert_int_equal(iw_call_func(spin, NULL, 0, NULL, 0), IW_TRAP);
        clock_gettime(CLOCK_MONOTONIC, &stopped);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_true(elapsed(&w.fired, &stopped) < 0.1);
        assert_trap(e, IW_TRAP_INTERRUPTED, "interrupted");
        assert_int_equal(iw_store_can_resume(e->s), 1);
        iw_store_abandon(e->s);
        assert_int_equal(call_i32(e, "seven", NULL, &r), IW_OK);
        assert_int_equal(r, 7);
    }
}

/* An interrupt requested while idle traps the next call at its first
 * checkpoint (the entry, which then costs no fuel) and is consumed;
 * resuming completes the call. */
static void test_interrupt_before_call(void **state)
{
    env *e = *state;
    int32_t r = 0;

    iw_store_set_fuel(e->s, 100);
    iw_store_interrupt(e->s);
    assert_int_equal(call_i32(e, "seven", NULL, &r), IW_TRAP);
    assert_trap(e, IW_TRAP_INTERRUPTED, "interrupted");
    assert_int_equal(iw_store_get_fuel(e->s), 100);
    assert_int_equal(iw_store_can_resume(e->s), 1);
    assert_int_equal(resume_i32(e, &r), IW_OK); /* the flag was consumed */
    assert_int_equal(r, 7);
    assert_int_equal(iw_store_get_fuel(e->s), 99);

    /* Same with metering off, then an ordinary call. */
    iw_store_set_fuel(e->s, -1);
    iw_store_interrupt(e->s);
    assert_int_equal(call1(e, "count", 10, &r), IW_TRAP);
    assert_trap(e, IW_TRAP_INTERRUPTED, "interrupted");
    assert_int_equal(call1(e, "count", 10, &r), IW_OK);
    assert_int_equal(r, 10);

    /* Cleared before the call: nothing happens. */
    iw_store_interrupt(e->s);
    iw_store_clear_interrupt(e->s);
    assert_int_equal(call1(e, "count", 10, &r), IW_OK);
    assert_int_equal(r, 10);
}

/* ------------------------------------------------------------------------ */
/* Caps.                                                                    */

static void test_memory_cap(void **state)
{
    iw_config cfg;
    env *e;
    int32_t r = 0;

    (void)state;
    iw_config_default(&cfg);
    cfg.max_memory_pages = 3;
    e = env_new(&cfg);
    assert_int_equal(call1(e, "grow", 1, &r), IW_OK);
    assert_int_equal(r, 1);
    assert_int_equal(call1(e, "grow", 2, &r), IW_OK);
    assert_int_equal(r, -1); /* 4 pages > 3 */
    assert_int_equal(call1(e, "grow", 1, &r), IW_OK);
    assert_int_equal(r, 2);
    assert_int_equal(call1(e, "grow", 1, &r), IW_OK);
    assert_int_equal(r, -1);
    assert_int_equal(call1(e, "grow", 0, &r), IW_OK);
    assert_int_equal(r, 3);
    assert_int_equal(iw_memory_size(iw_instance_memory(e->inst)),
                     3u * 65536u);
    env_free(e);
}

static void test_table_cap(void **state)
{
    iw_config cfg;
    env *e;
    int32_t r = 0;

    (void)state;
    iw_config_default(&cfg);
    cfg.max_table_elems = 4;
    e = env_new(&cfg);
    assert_int_equal(call1(e, "tgrow", 2, &r), IW_OK);
    assert_int_equal(r, 1);
    assert_int_equal(call1(e, "tgrow", 2, &r), IW_OK);
    assert_int_equal(r, -1); /* 5 elements > 4 */
    assert_int_equal(call1(e, "tgrow", 1, &r), IW_OK);
    assert_int_equal(r, 3);
    assert_int_equal(call1(e, "tgrow", 1, &r), IW_OK);
    assert_int_equal(r, -1);
    assert_int_equal(call1(e, "tgrow", 0, &r), IW_OK);
    assert_int_equal(r, 4);
    env_free(e);
}

/* max_call_depth 100: rec(99) uses 100 frames (the entry included). */
static void test_call_depth_cap(void **state)
{
    iw_config cfg;
    env *e;
    int32_t r = 0;

    (void)state;
    iw_config_default(&cfg);
    cfg.max_call_depth = 100;
    e = env_new(&cfg);
    assert_int_equal(call1(e, "rec", 99, &r), IW_OK);
    assert_int_equal(r, 99);
    assert_int_equal(call1(e, "rec", 100, &r), IW_TRAP);
    assert_trap(e, IW_TRAP_STACK_EXHAUSTED, "call stack exhausted");
    assert_int_equal(iw_store_can_resume(e->s), 0);
    assert_int_equal(call1(e, "rec", 99, &r), IW_OK);
    assert_int_equal(r, 99);
    env_free(e);
}

/* stack_slots 64: each level of rec starts one slot above its caller (the
 * argument) and the deepest level needs its whole frame height, 4 slots as
 * translated, so rec(60) (levels at slots 0..60) is the largest that
 * fits. */
static void test_value_stack_cap(void **state)
{
    iw_config cfg;
    env *e;
    int32_t r = 0;

    (void)state;
    iw_config_default(&cfg);
    cfg.stack_slots = 64;
    e = env_new(&cfg);
    assert_int_equal(call1(e, "rec", 60, &r), IW_OK);
    assert_int_equal(r, 60);
    assert_int_equal(call1(e, "rec", 60 + 1, &r), IW_TRAP);
    assert_trap(e, IW_TRAP_STACK_EXHAUSTED, "call stack exhausted");
    assert_int_equal(call1(e, "rec", 5000, &r), IW_TRAP);
    assert_trap(e, IW_TRAP_STACK_EXHAUSTED, "call stack exhausted");
    assert_int_equal(call1(e, "rec", 10, &r), IW_OK);
    assert_int_equal(r, 10);
    env_free(e);
}

/* Host re-entry: reenter(n) goes guest -> host -> guest n times. */
static void test_host_depth_cap(void **state)
{
    iw_config cfg;
    env *e;
    int32_t r = 0;

    (void)state;
    iw_config_default(&cfg);
    assert_int_equal(cfg.max_host_depth, 64);
    cfg.max_host_depth = 5;
    e = env_new(&cfg);
    e->mode = HOST_REENTER;
    assert_int_equal(call1(e, "reenter", 5, &r), IW_OK);
    assert_int_equal(r, 5);
    assert_int_equal(e->host_calls, 6);
    assert_int_equal(call1(e, "reenter", 6, &r), IW_TRAP);
    assert_trap(e, IW_TRAP_STACK_EXHAUSTED, "call stack exhausted");
    assert_int_equal(iw_store_can_resume(e->s), 0);
    /* The store is usable and every level was released. */
    assert_int_equal(call1(e, "reenter", 5, &r), IW_OK);
    assert_int_equal(r, 5);
    env_free(e);

    /* The default: 64 re-entries. */
    e = env_new(NULL);
    e->mode = HOST_REENTER;
    assert_int_equal(call1(e, "reenter", 64, &r), IW_OK);
    assert_int_equal(r, 64);
    assert_int_equal(call1(e, "reenter", 65, &r), IW_TRAP);
    assert_trap(e, IW_TRAP_STACK_EXHAUSTED, "call stack exhausted");
    assert_int_equal(call1(e, "reenter", 64, &r), IW_OK);
    env_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fuel_exact_boundary, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fuel_exact_in_host, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fuel_refill_resume, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_abandon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reentrant_trap_not_resumable,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupt_from_thread, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_interrupt_before_call, setup,
                                        teardown),
        cmocka_unit_test(test_memory_cap),
        cmocka_unit_test(test_table_cap),
        cmocka_unit_test(test_call_depth_cap),
        cmocka_unit_test(test_value_stack_cap),
        cmocka_unit_test(test_host_depth_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
