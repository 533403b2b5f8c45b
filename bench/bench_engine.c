/*
 * bench_engine.c - micro-benchmarks of the engine's embedding paths, using
 * only the public API (wasm.h): a host->Wasm call of a tiny export, a 64-byte
 * message copied into linear memory plus a call of its handler, loading and
 * instantiating a ~100 KB module, and the cost of fuel metering.
 *
 *   bench_engine [--quick] MICRO.wasm LOAD.wasm
 *
 * MICRO.wasm is micro_guest.c, LOAD.wasm any real module (load_guest.wasm:
 * the engine itself compiled to WASI).  Output: one figure per line,
 * "name value unit" (lines starting with '#' are descriptions), which
 * bench/run.py parses.  Every figure is the median of several repetitions
 * (the *_min_* figures are the fastest repetition: the machine's noise floor).
 * --quick runs tiny repetition counts (the bench-smoke test).  Exit status 0,
 * or 1 with a message on stderr when anything fails or a result is wrong.
 */
#define _POSIX_C_SOURCE 200809L
#include "wasm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Repetition counts; --quick divides the work. */
typedef struct bench_cfg {
    int reps;             /* repetitions of each timed batch */
    uint32_t calls;       /* calls per batch (tiny, msg) */
    int loads;            /* module loads for the load figure */
    uint32_t spin_iters;  /* loop iterations for the fuel figure */
    uint32_t call_iters;  /* leaf calls for the fuel figure */
} bench_cfg;

/* A module instantiated in its own store. */
typedef struct bench_inst {
    iw_module *mod;
    iw_store *store;
    iw_instance *inst;
} bench_inst;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v in place, so v[0] is then the minimum);
 * n > 0. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Reads a whole file into *out (caller frees with free()).  Returns 0, or -1
 * with a message on stderr. */
static int read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long sz;
    if (!f || fseek(f, 0, SEEK_END) != 0 || (sz = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0)
        goto fail;
    buf = malloc(sz ? (size_t)sz : 1);
    if (!buf || fread(buf, 1, (size_t)sz, f) != (size_t)sz)
        goto fail;
    fclose(f);
    *out = buf;
    *len = (size_t)sz;
    return 0;
fail:
    fprintf(stderr, "bench_engine: cannot read %s\n", path);
    free(buf);
    if (f)
        fclose(f);
    return -1;
}

/* A host function standing in for any import: traps if ever called. */
static iw_status dummy_import(iw_call *call, const iw_val *args,
                              iw_val *results, void *user)
{
    (void)args;
    (void)results;
    (void)user;
    return iw_call_trap(call, "bench_engine: dummy import called");
}

/* Creates one trapping host function per function import of m in s, into
 * imports[0..n).  Returns 0, or -1 when m imports something other than
 * functions or more than max imports, or memory runs out. */
static int make_imports(iw_store *s, const iw_module *m, iw_extern *imports,
                        uint32_t max)
{
    uint32_t n = iw_module_import_count(m);
    if (n > max)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        iw_extern_desc d;
        if (iw_module_import(m, i, &d) != IW_OK || d.kind != IW_EXTERN_FUNC)
            return -1;
        imports[i].kind = IW_EXTERN_FUNC;
        imports[i].of.func =
            iw_func_new_host(s, d.func.params, d.func.nparams, d.func.results,
                             d.func.nresults, dummy_import, NULL);
        if (!imports[i].of.func)
            return -1;
    }
    return 0;
}

/* Loads and instantiates bytes into *b (freed with inst_free).  Returns 0,
 * or -1 with a message on stderr. */
static int inst_new(const uint8_t *bytes, size_t len, bench_inst *b)
{
    char err[256];
    iw_extern imports[64];
    memset(b, 0, sizeof *b);
    if (iw_module_load(bytes, len, &b->mod, err, sizeof err) != IW_OK)
        goto fail;
    b->store = iw_store_new(NULL);
    if (!b->store) {
        snprintf(err, sizeof err, "out of memory");
        goto fail;
    }
    if (make_imports(b->store, b->mod, imports, 64) != 0) {
        snprintf(err, sizeof err, "unsupported imports");
        goto fail;
    }
    if (iw_instantiate(b->store, b->mod, imports,
                       iw_module_import_count(b->mod), &b->inst, err,
                       sizeof err) != IW_OK)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "bench_engine: %s\n", err);
    iw_store_free(b->store);
    iw_module_free(b->mod);
    memset(b, 0, sizeof *b);
    return -1;
}

static void inst_free(bench_inst *b)
{
    iw_store_free(b->store);
    iw_module_free(b->mod);
}

static iw_func *must_func(const bench_inst *b, const char *name)
{
    iw_func *f = iw_instance_func(b->inst, name);
    if (!f)
        fprintf(stderr, "bench_engine: no export '%s'\n", name);
    return f;
}

/* Prints one figure. */
static void emit(const char *name, double value, const char *unit)
{
    printf("%s %.3f %s\n", name, value, unit);
}

/* ns per call of tiny() (returns 42, no arguments): the host->Wasm call
 * path.  Returns 0 or -1. */
static int bench_tiny(const bench_cfg *c, const bench_inst *b)
{
    iw_func *f = must_func(b, "tiny");
    double t[64];
    if (!f)
        return -1;
    for (int r = -1; r < c->reps; r++) { /* r == -1 warms up */
        double t0 = now_ns();
        for (uint32_t i = 0; i < c->calls; i++) {
            iw_val res;
            if (iw_call_func(f, NULL, 0, &res, 1) != IW_OK ||
                res.of.i32 != 42) {
                fprintf(stderr, "bench_engine: tiny() failed\n");
                return -1;
            }
        }
        if (r >= 0)
            t[r] = (now_ns() - t0) / c->calls;
    }
    printf("# tiny: iw_call_func of an export that returns a constant\n");
    emit("call.tiny_ns", median(t, c->reps), "ns");
    emit("call.tiny_min_ns", t[0], "ns");
    return 0;
}

/* ns per message: iw_memory_write of a 64-byte message (first byte varies)
 * into the guest's inbox, then on_msg(inbox, 64), which reads bytes 0, 1, 32
 * and 63 and returns them packed; every result is checked.  Returns 0/-1. */
static int bench_msg(const bench_cfg *c, const bench_inst *b)
{
    iw_func *addr_f = must_func(b, "inbox"), *f = must_func(b, "on_msg");
    iw_memory *mem = iw_instance_memory(b->inst);
    uint8_t msg[64];
    iw_val args[2], res;
    double t[64];
    if (!addr_f || !f || !mem ||
        iw_call_func(addr_f, NULL, 0, &res, 1) != IW_OK) {
        fprintf(stderr, "bench_engine: micro module lacks inbox/on_msg\n");
        return -1;
    }
    uint32_t inbox = (uint32_t)res.of.i32;
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)(i * 7 + 1);
    args[0].type = IW_I32;
    args[0].of.i32 = (int32_t)inbox;
    args[1].type = IW_I32;
    args[1].of.i32 = 64;
    for (int r = -1; r < c->reps; r++) {
        double t0 = now_ns();
        for (uint32_t i = 0; i < c->calls; i++) {
            msg[0] = (uint8_t)i;
            uint32_t want = (uint32_t)msg[0] | (uint32_t)msg[1] << 8 |
                            (uint32_t)msg[32] << 16 | (uint32_t)msg[63] << 24;
            if (iw_memory_write(mem, inbox, msg, sizeof msg) != IW_OK ||
                iw_call_func(f, args, 2, &res, 1) != IW_OK ||
                (uint32_t)res.of.i32 != want) {
                fprintf(stderr, "bench_engine: on_msg() failed\n");
                return -1;
            }
        }
        if (r >= 0)
            t[r] = (now_ns() - t0) / c->calls;
    }
    printf("# msg64: iw_memory_write of 64 bytes + on_msg(ptr, len), which "
           "reads 4 of the bytes and returns them packed\n");
    emit("call.msg64_ns", median(t, c->reps), "ns");
    emit("call.msg64_min_ns", t[0], "ns");
    return 0;
}

/* Load (decode + validate + translate) and instantiate (store, one dummy
 * host function per import, instantiate) of the bytes, each timed
 * separately and together, c->loads times.  Returns 0/-1. */
static int bench_load(const bench_cfg *c, const uint8_t *bytes, size_t len)
{
    double tl[256], ti[256], tt[256];
    int n = c->loads < 256 ? c->loads : 256;
    for (int r = -1; r < n; r++) {
        bench_inst b;
        char err[256];
        iw_extern imports[64];
        memset(&b, 0, sizeof b);
        double t0 = now_ns();
        if (iw_module_load(bytes, len, &b.mod, err, sizeof err) != IW_OK) {
            fprintf(stderr, "bench_engine: load: %s\n", err);
            return -1;
        }
        double t1 = now_ns();
        b.store = iw_store_new(NULL);
        if (!b.store || make_imports(b.store, b.mod, imports, 64) != 0 ||
            iw_instantiate(b.store, b.mod, imports,
                           iw_module_import_count(b.mod), &b.inst, err,
                           sizeof err) != IW_OK) {
            fprintf(stderr, "bench_engine: instantiate failed\n");
            inst_free(&b);
            return -1;
        }
        double t2 = now_ns();
        inst_free(&b);
        if (r >= 0) {
            tl[r] = (t1 - t0) / 1e3;
            ti[r] = (t2 - t1) / 1e3;
            tt[r] = (t2 - t0) / 1e3;
        }
    }
    printf("# load: iw_module_load (decode, validate, translate) + store, "
           "dummy imports, iw_instantiate of a %zu-byte module; median of "
           "%d\n", len, n);
    emit("load.module_bytes", (double)len, "bytes");
    emit("load.decode_us", median(tl, n), "us");
    emit("load.instantiate_us", median(ti, n), "us");
    emit("load.total_us", median(tt, n), "us");
    emit("load.total_min_us", tt[0], "us");
    return 0;
}

/* Times f(arg) with fuel off and on (a huge budget), alternating, c->reps
 * times each; checks that both give the same result.  Emits
 * <name>_off_ms, <name>_on_ms, <name>_overhead_pct and ns per step. */
static int bench_fuel_one(const bench_cfg *c, const bench_inst *b,
                          const char *export, const char *name, uint32_t arg)
{
    iw_func *f = must_func(b, export);
    double toff[64], ton[64];
    int32_t want = 0;
    char key[64];
    if (!f)
        return -1;
    for (int r = -1; r < c->reps; r++) {
        for (int on = 0; on < 2; on++) {
            iw_val a, res;
            a.type = IW_I32;
            a.of.i32 = (int32_t)arg;
            iw_store_set_fuel(b->store, on ? INT64_C(1) << 60 : -1);
            double t0 = now_ns();
            if (iw_call_func(f, &a, 1, &res, 1) != IW_OK) {
                fprintf(stderr, "bench_engine: %s: %s\n", export,
                        iw_store_errmsg(b->store));
                return -1;
            }
            double dt = (now_ns() - t0) / 1e6;
            if (r < 0 && !on)
                want = res.of.i32;
            else if (res.of.i32 != want) {
                fprintf(stderr, "bench_engine: %s: results differ\n", export);
                return -1;
            }
            if (r >= 0)
                (on ? ton : toff)[r] = dt;
        }
    }
    iw_store_set_fuel(b->store, -1);
    double off = median(toff, c->reps), on = median(ton, c->reps);
    snprintf(key, sizeof key, "fuel.%s_off_ms", name);
    emit(key, off, "ms");
    snprintf(key, sizeof key, "fuel.%s_on_ms", name);
    emit(key, on, "ms");
    snprintf(key, sizeof key, "fuel.%s_overhead_pct", name);
    emit(key, (on - off) / off * 100.0, "%");
    snprintf(key, sizeof key, "fuel.%s_off_ns_per_step", name);
    emit(key, off * 1e6 / arg, "ns");
    return 0;
}

static int bench_fuel(const bench_cfg *c, const bench_inst *b)
{
    printf("# fuel loop: spin(%u), a not-unrolled xorshift loop (one "
           "checkpoint per iteration); fuel off vs on\n",
           (unsigned)c->spin_iters);
    if (bench_fuel_one(c, b, "spin", "loop", c->spin_iters) != 0)
        return -1;
    printf("# fuel call: calls(%u), a loop calling a leaf function (two "
           "checkpoints per step); fuel off vs on\n",
           (unsigned)c->call_iters);
    return bench_fuel_one(c, b, "calls", "call", c->call_iters);
}

int main(int argc, char **argv)
{
    bench_cfg c = {9, 1000000, 51, 20000000, 5000000};
    const char *paths[2];
    int npaths = 0, rc = 1;
    uint8_t *micro = NULL, *load = NULL;
    size_t micro_len = 0, load_len = 0;
    bench_inst b;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            c = (bench_cfg){3, 2000, 5, 20000, 5000};
        else if (npaths < 2 && argv[i][0] != '-')
            paths[npaths++] = argv[i];
        else
            npaths = 3;
    }
    if (npaths != 2) {
        fprintf(stderr, "usage: bench_engine [--quick] MICRO.wasm LOAD.wasm\n");
        return 2;
    }
    if (read_file(paths[0], &micro, &micro_len) != 0 ||
        read_file(paths[1], &load, &load_len) != 0)
        goto out;
    if (inst_new(micro, micro_len, &b) != 0)
        goto out;
    if (bench_tiny(&c, &b) == 0 && bench_msg(&c, &b) == 0 &&
        bench_load(&c, load, load_len) == 0 && bench_fuel(&c, &b) == 0)
        rc = 0;
    inst_free(&b);
out:
    free(micro);
    free(load);
    return rc;
}
