/*
 * test_wasm_api.c - cmocka tests of the engine's public embedding API
 * (wasm.h): loading, import/export listing, host functions (traps, exits,
 * reentrancy), memories, globals, argument checking, traps, instantiation
 * failures and out-of-memory handling, on small hand-assembled modules.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "wasm.h"

/* ------------------------------------------------------------------------ */
/* Module binaries (assembled by hand from the text below; one line per
 * section header comment).
 *
 * main:
 * (module
 *   (import "env" "add" (func $add (param i32 i32) (result i32)))
 *   (import "env" "boom" (func $boom))
 *   (import "env" "reenter" (func $reenter (param i32) (result i32)))
 *   (import "env" "limit" (global $limit i32))
 *   (memory (export "mem") 1 2)
 *   (global $counter (export "counter") (mut i32) (i32.const 0))
 *   (global $k (export "k") i64 (i64.const 42))
 *   (table (export "tab") 2 funcref)
 *   (elem (i32.const 0) $double $call_add)
 *   (data (i32.const 16) "hello")
 *   (func $call_add (export "call_add") (param i32 i32) (result i32)
 *     local.get 0 local.get 1 call $add)
 *   (func $double (export "double") (param i32) (result i32)
 *     local.get 0 i32.const 2 i32.mul)
 *   (func (export "call_boom") call $boom)
 *   (func (export "call_reenter") (param i32) (result i32)
 *     local.get 0 call $reenter i32.const 1 i32.add)
 *   (func (export "div") (param i32 i32) (result i32)
 *     local.get 0 local.get 1 i32.div_s)
 *   (func (export "load") (param i32) (result i32) local.get 0 i32.load)
 *   (func (export "get_limit") (result i32) global.get $limit)
 *   (func (export "mix") (param i64 f32 f64) (result f64)
 *     local.get 0 f64.convert_i64_s local.get 1 f64.promote_f32 f64.add local.get 2 f64.add)
 *   (func (export "bump") (result i32)
 *     global.get $counter i32.const 1 i32.add global.set $counter global.get $counter)
 *   (func (export "indirect") (param i32 i32) (result i32)
 *     local.get 1 local.get 0 call_indirect (param i32) (result i32))
 * )
 *
 * segtrap (the second data segment is out of bounds):
 * (module
 *   (import "env" "mem" (memory 1))
 *   (data (i32.const 0) "ab")
 *   (data (i32.const 65535) "xy"))
 *
 * starttrap (the start function traps after data initialisation):
 * (module
 *   (import "env" "mem" (memory 1))
 *   (data (i32.const 8) "ok")
 *   (func $s unreachable)
 *   (start $s))
 */
static const uint8_t main_wasm[] = {
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, /* magic, version */
    /* type section, 26 bytes */
    0x01, 0x1a, 0x05, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, 0x60, 0x00, 0x00,
    0x60, 0x01, 0x7f, 0x01, 0x7f, 0x60, 0x00, 0x01, 0x7f, 0x60, 0x03, 0x7e,
    0x7d, 0x7c, 0x01, 0x7c,
    /* import section, 49 bytes */
    0x02, 0x31, 0x04, 0x03, 0x65, 0x6e, 0x76, 0x03, 0x61, 0x64, 0x64, 0x00,
    0x00, 0x03, 0x65, 0x6e, 0x76, 0x04, 0x62, 0x6f, 0x6f, 0x6d, 0x00, 0x01,
    0x03, 0x65, 0x6e, 0x76, 0x07, 0x72, 0x65, 0x65, 0x6e, 0x74, 0x65, 0x72,
    0x00, 0x02, 0x03, 0x65, 0x6e, 0x76, 0x05, 0x6c, 0x69, 0x6d, 0x69, 0x74,
    0x03, 0x7f, 0x00,
    /* function section, 11 bytes */
    0x03, 0x0b, 0x0a, 0x00, 0x02, 0x01, 0x02, 0x00, 0x02, 0x03, 0x04, 0x03,
    0x00,
    /* table section, 4 bytes */
    0x04, 0x04, 0x01, 0x70, 0x00, 0x02,
    /* memory section, 4 bytes */
    0x05, 0x04, 0x01, 0x01, 0x01, 0x02,
    /* global section, 11 bytes */
    0x06, 0x0b, 0x02, 0x7f, 0x01, 0x41, 0x00, 0x0b, 0x7e, 0x00, 0x42, 0x2a,
    0x0b,
    /* export section, 123 bytes */
    0x07, 0x7b, 0x0e, 0x03, 0x6d, 0x65, 0x6d, 0x02, 0x00, 0x07, 0x63, 0x6f,
    0x75, 0x6e, 0x74, 0x65, 0x72, 0x03, 0x01, 0x01, 0x6b, 0x03, 0x02, 0x03,
    0x74, 0x61, 0x62, 0x01, 0x00, 0x08, 0x63, 0x61, 0x6c, 0x6c, 0x5f, 0x61,
    0x64, 0x64, 0x00, 0x03, 0x06, 0x64, 0x6f, 0x75, 0x62, 0x6c, 0x65, 0x00,
    0x04, 0x09, 0x63, 0x61, 0x6c, 0x6c, 0x5f, 0x62, 0x6f, 0x6f, 0x6d, 0x00,
    0x05, 0x0c, 0x63, 0x61, 0x6c, 0x6c, 0x5f, 0x72, 0x65, 0x65, 0x6e, 0x74,
    0x65, 0x72, 0x00, 0x06, 0x03, 0x64, 0x69, 0x76, 0x00, 0x07, 0x04, 0x6c,
    0x6f, 0x61, 0x64, 0x00, 0x08, 0x09, 0x67, 0x65, 0x74, 0x5f, 0x6c, 0x69,
    0x6d, 0x69, 0x74, 0x00, 0x09, 0x03, 0x6d, 0x69, 0x78, 0x00, 0x0a, 0x04,
    0x62, 0x75, 0x6d, 0x70, 0x00, 0x0b, 0x08, 0x69, 0x6e, 0x64, 0x69, 0x72,
    0x65, 0x63, 0x74, 0x00, 0x0c,
    /* element section, 8 bytes */
    0x09, 0x08, 0x01, 0x00, 0x41, 0x00, 0x0b, 0x02, 0x04, 0x03,
    /* code section, 89 bytes */
    0x0a, 0x59, 0x0a, 0x08, 0x00, 0x20, 0x00, 0x20, 0x01, 0x10, 0x00, 0x0b,
    0x07, 0x00, 0x20, 0x00, 0x41, 0x02, 0x6c, 0x0b, 0x04, 0x00, 0x10, 0x01,
    0x0b, 0x09, 0x00, 0x20, 0x00, 0x10, 0x02, 0x41, 0x01, 0x6a, 0x0b, 0x07,
    0x00, 0x20, 0x00, 0x20, 0x01, 0x6d, 0x0b, 0x07, 0x00, 0x20, 0x00, 0x28,
    0x02, 0x00, 0x0b, 0x04, 0x00, 0x23, 0x00, 0x0b, 0x0c, 0x00, 0x20, 0x00,
    0xb9, 0x20, 0x01, 0xbb, 0xa0, 0x20, 0x02, 0xa0, 0x0b, 0x0b, 0x00, 0x23,
    0x01, 0x41, 0x01, 0x6a, 0x24, 0x01, 0x23, 0x01, 0x0b, 0x09, 0x00, 0x20,
    0x01, 0x20, 0x00, 0x11, 0x02, 0x00, 0x0b,
    /* data section, 11 bytes */
    0x0b, 0x0b, 0x01, 0x00, 0x41, 0x10, 0x0b, 0x05, 0x68, 0x65, 0x6c, 0x6c,
    0x6f,
};
static const uint8_t segtrap_wasm[] = {
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, /* magic, version */
    /* import section, 12 bytes */
    0x02, 0x0c, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x03, 0x6d, 0x65, 0x6d, 0x02,
    0x00, 0x01,
    /* data section, 17 bytes */
    0x0b, 0x11, 0x02, 0x00, 0x41, 0x00, 0x0b, 0x02, 0x61, 0x62, 0x00, 0x41,
    0xff, 0xff, 0x03, 0x0b, 0x02, 0x78, 0x79,
};
static const uint8_t starttrap_wasm[] = {
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, /* magic, version */
    /* type section, 4 bytes */
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00,
    /* import section, 12 bytes */
    0x02, 0x0c, 0x01, 0x03, 0x65, 0x6e, 0x76, 0x03, 0x6d, 0x65, 0x6d, 0x02,
    0x00, 0x01,
    /* function section, 2 bytes */
    0x03, 0x02, 0x01, 0x00,
    /* start section, 1 bytes */
    0x08, 0x01, 0x00,
    /* code section, 5 bytes */
    0x0a, 0x05, 0x01, 0x03, 0x00, 0x00, 0x0b,
    /* data section, 8 bytes */
    0x0b, 0x08, 0x01, 0x00, 0x41, 0x08, 0x0b, 0x02, 0x6f, 0x6b,
};

/* A type section whose only function type has the form byte 0x61 instead of
 * 0x60, at byte offset 11. */
static const uint8_t malformed_wasm[] = {
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, /* magic, version */
    0x01, 0x04, 0x01, 0x61, 0x00, 0x00,             /* type section */
};

/* ------------------------------------------------------------------------ */
/* Fixture: the main module instantiated with three host functions and an
 * imported global. */

enum { BOOM_TRAP, BOOM_EXIT };
enum { REENTER_DOUBLE, REENTER_DIV_ZERO };

typedef struct env {
    iw_module *mod;
    iw_store *s;
    iw_instance *inst;
    iw_func *host_add, *host_boom, *host_reenter;
    iw_global *limit;
    int add_calls;
    int32_t add_seen[2];
    int boom_mode;
    int reenter_mode;
    iw_status nested_status;
} env;

static const uint8_t t_i32[] = {IW_I32, IW_I32};

static iw_val i32v(int32_t x)
{
    iw_val v;
    memset(&v, 0, sizeof v);
    v.type = IW_I32;
    v.of.i32 = x;
    return v;
}

static iw_val i64v(int64_t x)
{
    iw_val v;
    memset(&v, 0, sizeof v);
    v.type = IW_I64;
    v.of.i64 = x;
    return v;
}

static iw_val f32v(float x)
{
    iw_val v;
    memset(&v, 0, sizeof v);
    v.type = IW_F32;
    memcpy(&v.of.f32, &x, sizeof x);
    return v;
}

static iw_val f64v(double x)
{
    iw_val v;
    memset(&v, 0, sizeof v);
    v.type = IW_F64;
    memcpy(&v.of.f64, &x, sizeof x);
    return v;
}

/* env.add (i32 i32) -> i32: records its arguments and returns their sum. */
static iw_status host_add(iw_call *call, const iw_val *args, iw_val *results,
                          void *user)
{
    env *e = user;
    (void)call;
    e->add_calls++;
    if (args[0].type != IW_I32 || args[1].type != IW_I32 ||
        results[0].type != IW_I32)
        return iw_call_trap(call, "host_add: bad value types");
    e->add_seen[0] = args[0].of.i32;
    e->add_seen[1] = args[1].of.i32;
    results[0].of.i32 = (int32_t)((uint32_t)args[0].of.i32 +
                                  (uint32_t)args[1].of.i32);
    return IW_OK;
}

/* env.boom () -> (): traps or requests an exit, checking the call context. */
static iw_status host_boom(iw_call *call, const iw_val *args, iw_val *results,
                           void *user)
{
    env *e = user;
    (void)args;
    (void)results;
    if (iw_call_store(call) != e->s || iw_call_instance(call) != e->inst ||
        iw_call_memory(call) != iw_instance_memory(e->inst))
        return iw_call_trap(call, "host_boom: wrong call context");
    if (e->boom_mode == BOOM_EXIT)
        return iw_call_exit(call, 3);
    return iw_call_trap(call, "boom from host");
}

/* env.reenter (i32) -> i32: calls back into the guest through the calling
 * instance: double(x), or div(x, 0) whose trap it swallows (returns -1). */
static iw_status host_reenter(iw_call *call, const iw_val *args,
                              iw_val *results, void *user)
{
    env *e = user;
    iw_instance *inst = iw_call_instance(call);
    iw_val in[2], out;
    iw_func *f;

    if (e->reenter_mode == REENTER_DOUBLE) {
        f = iw_instance_func(inst, "double");
        in[0] = args[0];
        e->nested_status = iw_call_func(f, in, 1, &out, 1);
    } else {
        f = iw_instance_func(inst, "div");
        in[0] = args[0];
        in[1] = i32v(0);
        e->nested_status = iw_call_func(f, in, 2, &out, 1);
    }
    if (e->nested_status == IW_OK)
        results[0].of.i32 = out.of.i32;
    else if (e->nested_status == IW_TRAP)
        results[0].of.i32 = -1;
    else
        return iw_call_trap(call, "host_reenter: nested call failed");
    return IW_OK;
}

/* Creates the host objects for the main module in e->s; false when out of
 * memory. */
static bool make_imports(env *e, iw_extern imports[4])
{
    e->host_add = iw_func_new_host(e->s, t_i32, 2, t_i32, 1, host_add, e);
    e->host_boom = iw_func_new_host(e->s, NULL, 0, NULL, 0, host_boom, e);
    e->host_reenter =
        iw_func_new_host(e->s, t_i32, 1, t_i32, 1, host_reenter, e);
    e->limit = iw_global_new(e->s, i32v(7), 0);
    if (!e->host_add || !e->host_boom || !e->host_reenter || !e->limit)
        return false;
    memset(imports, 0, 4 * sizeof *imports);
    imports[0].kind = IW_EXTERN_FUNC;
    imports[0].of.func = e->host_add;
    imports[1].kind = IW_EXTERN_FUNC;
    imports[1].of.func = e->host_boom;
    imports[2].kind = IW_EXTERN_FUNC;
    imports[2].of.func = e->host_reenter;
    imports[3].kind = IW_EXTERN_GLOBAL;
    imports[3].of.global = e->limit;
    return true;
}

static int setup(void **state)
{
    char err[256];
    iw_extern imports[4];
    env *e = test_calloc(1, sizeof *e);

    assert_non_null(e);
    assert_int_equal(iw_module_load(main_wasm, sizeof main_wasm, &e->mod, err,
                                     sizeof err),
                     IW_OK);
    e->s = iw_store_new(NULL);
    assert_non_null(e->s);
    assert_true(make_imports(e, imports));
    assert_int_equal(
        iw_instantiate(e->s, e->mod, imports, 4, &e->inst, err, sizeof err),
        IW_OK);
    assert_non_null(e->inst);
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    env *e = *state;
    iw_store_free(e->s);
    iw_module_free(e->mod);
    test_free(e);
    return 0;
}

/* Calls export `name` with the given arguments expecting one i32 result;
 * returns the status and stores the result in *r. */
static iw_status call_i32(env *e, const char *name, const iw_val *args,
                          size_t nargs, int32_t *r)
{
    iw_val out;
    iw_func *f = iw_instance_func(e->inst, name);
    iw_status st;

    assert_non_null(f);
    memset(&out, 0, sizeof out);
    st = iw_call_func(f, args, nargs, &out, 1);
    if (st == IW_OK) {
        assert_int_equal(out.type, IW_I32);
        *r = out.of.i32;
    }
    return st;
}

/* ------------------------------------------------------------------------ */
/* Tests.                                                                    */

static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(iw_status_name(IW_TRAP), "IW_TRAP");
    assert_string_equal(iw_status_msg(IW_LINK), "unlinkable module");
    assert_string_equal(iw_trap_msg(IW_TRAP_OOB_MEMORY),
                        "out of bounds memory access");
    assert_string_equal(iw_valtype_name(IW_EXTERNREF), "externref");
    assert_string_equal(iw_valtype_name(0x40), "?");
    assert_string_equal(iw_extern_kind_name(IW_EXTERN_TABLE), "table");
    assert_non_null(iw_status_name((iw_status)1000));
    assert_non_null(iw_trap_msg((iw_trap)1000));
}

static void test_imports_exports(void **state)
{
    env *e = *state;
    iw_extern_desc d;
    uint32_t i;
    bool seen_mix = false, seen_mem = false, seen_counter = false;
    bool seen_k = false, seen_tab = false;

    assert_int_equal(iw_module_import_count(e->mod), 4);
    assert_int_equal(iw_module_export_count(e->mod), 14);
    assert_int_equal(iw_module_func_count(e->mod), 13);

    assert_int_equal(iw_module_import(e->mod, 0, &d), IW_OK);
    assert_string_equal(d.module, "env");
    assert_string_equal(d.name, "add");
    assert_int_equal(d.kind, IW_EXTERN_FUNC);
    assert_int_equal(d.func.nparams, 2);
    assert_int_equal(d.func.nresults, 1);
    assert_int_equal(d.func.params[0], IW_I32);
    assert_int_equal(d.func.params[1], IW_I32);
    assert_int_equal(d.func.results[0], IW_I32);

    assert_int_equal(iw_module_import(e->mod, 1, &d), IW_OK);
    assert_string_equal(d.name, "boom");
    assert_int_equal(d.func.nparams, 0);
    assert_int_equal(d.func.nresults, 0);

    assert_int_equal(iw_module_import(e->mod, 3, &d), IW_OK);
    assert_string_equal(d.module, "env");
    assert_string_equal(d.name, "limit");
    assert_int_equal(d.kind, IW_EXTERN_GLOBAL);
    assert_int_equal(d.valtype, IW_I32);
    assert_int_equal(d.mut, 0);

    assert_int_equal(iw_module_import(e->mod, 4, &d), IW_ARG);
    assert_int_equal(iw_module_export(e->mod, 14, &d), IW_ARG);

    for (i = 0; i < iw_module_export_count(e->mod); i++) {
        assert_int_equal(iw_module_export(e->mod, i, &d), IW_OK);
        assert_non_null(d.name);
        if (strcmp(d.name, "mix") == 0) {
            seen_mix = true;
            assert_int_equal(d.kind, IW_EXTERN_FUNC);
            assert_int_equal(d.func.nparams, 3);
            assert_int_equal(d.func.params[0], IW_I64);
            assert_int_equal(d.func.params[1], IW_F32);
            assert_int_equal(d.func.params[2], IW_F64);
            assert_int_equal(d.func.nresults, 1);
            assert_int_equal(d.func.results[0], IW_F64);
        } else if (strcmp(d.name, "mem") == 0) {
            seen_mem = true;
            assert_int_equal(d.kind, IW_EXTERN_MEMORY);
            assert_int_equal(d.limits.min, 1);
            assert_true(d.limits.has_max);
            assert_int_equal(d.limits.max, 2);
        } else if (strcmp(d.name, "counter") == 0) {
            seen_counter = true;
            assert_int_equal(d.kind, IW_EXTERN_GLOBAL);
            assert_int_equal(d.valtype, IW_I32);
            assert_int_equal(d.mut, 1);
        } else if (strcmp(d.name, "k") == 0) {
            seen_k = true;
            assert_int_equal(d.kind, IW_EXTERN_GLOBAL);
            assert_int_equal(d.valtype, IW_I64);
            assert_int_equal(d.mut, 0);
        } else if (strcmp(d.name, "tab") == 0) {
            seen_tab = true;
            assert_int_equal(d.kind, IW_EXTERN_TABLE);
            assert_int_equal(d.elemtype, IW_FUNCREF);
            assert_int_equal(d.limits.min, 2);
            assert_false(d.limits.has_max);
        }
    }
    assert_true(seen_mix && seen_mem && seen_counter && seen_k && seen_tab);

    {
        iw_module_counts c;
        iw_limits lim;
        iw_section_desc sd;
        iw_module_counts_get(e->mod, &c);
        assert_int_equal(c.funcs, 13);
        assert_int_equal(c.imported_funcs, 3);
        assert_int_equal(c.tables, 1);
        assert_int_equal(c.imported_tables, 0);
        assert_int_equal(c.memories, 1);
        assert_int_equal(c.imported_memories, 0);
        assert_int_equal(c.globals, 3);
        assert_int_equal(c.imported_globals, 1);
        assert_int_equal(c.elems, 1);
        assert_int_equal(c.datas, 1);
        assert_int_equal(c.has_start, 0);
        assert_int_equal(iw_module_memory_limits(e->mod, 0, &lim), IW_OK);
        assert_int_equal(lim.min, 1);
        assert_true(lim.has_max);
        assert_int_equal(lim.max, 2);
        assert_int_equal(iw_module_memory_limits(e->mod, 1, &lim), IW_ARG);
        /* type, import, function, table, memory, global, export, element,
         * code, data: ids and payload sizes as in the byte array above. */
        assert_int_equal(iw_module_section_count(e->mod), 10);
        assert_int_equal(iw_module_section(e->mod, 0, &sd), IW_OK);
        assert_int_equal(sd.id, 1);
        assert_int_equal(sd.size, 26);
        assert_int_equal(sd.offset, 10);
        assert_int_equal(iw_module_section(e->mod, 6, &sd), IW_OK);
        assert_int_equal(sd.id, 7);
        assert_int_equal(sd.size, 123);
        assert_int_equal(iw_module_section(e->mod, 9, &sd), IW_OK);
        assert_int_equal(sd.id, 11);
        assert_int_equal(sd.size, 11);
        assert_null(sd.name);
        assert_int_equal(iw_module_section(e->mod, 10, &sd), IW_ARG);
    }

    {
        iw_extern x;
        assert_int_equal(iw_instance_export(e->inst, "tab", &x), IW_OK);
        assert_int_equal(x.kind, IW_EXTERN_TABLE);
        assert_int_equal(iw_table_size(x.of.table), 2);
        assert_int_equal(iw_instance_export(e->inst, "nope", &x),
                         IW_NOTFOUND);
        assert_null(iw_instance_func(e->inst, "counter"));
        assert_ptr_equal(iw_instance_module(e->inst), e->mod);
    }
}

static void test_host_import_called(void **state)
{
    env *e = *state;
    iw_val args[2] = {i32v(7), i32v(-35)};
    int32_t r = 0;

    assert_int_equal(call_i32(e, "call_add", args, 2, &r), IW_OK);
    assert_int_equal(r, -28);
    assert_int_equal(e->add_calls, 1);
    assert_int_equal(e->add_seen[0], 7);
    assert_int_equal(e->add_seen[1], -35);

    /* The host function is callable directly too. */
    {
        iw_val out;
        assert_int_equal(iw_call_func(e->host_add, args, 2, &out, 1), IW_OK);
        assert_int_equal(out.of.i32, -28);
        assert_int_equal(e->add_calls, 2);
    }
    /* A guest function reached through the table (slot 0 holds double). */
    {
        iw_val ia[2] = {i32v(0), i32v(5)};
        assert_int_equal(call_i32(e, "indirect", ia, 2, &r), IW_OK);
        assert_int_equal(r, 10);
    }
}

static void test_host_trap_and_exit(void **state)
{
    env *e = *state;
    iw_func *f = iw_instance_func(e->inst, "call_boom");
    iw_val a = i32v(4);
    int32_t r = 0;

    assert_non_null(f);
    e->boom_mode = BOOM_TRAP;
    assert_int_equal(iw_call_func(f, NULL, 0, NULL, 0), IW_TRAP);
    assert_non_null(strstr(iw_store_errmsg(e->s), "boom from host"));
    assert_int_equal(iw_store_trap(e->s), IW_TRAP_HOST);

    assert_int_equal(call_i32(e, "double", &a, 1, &r), IW_OK);
    assert_int_equal(r, 8);

    e->boom_mode = BOOM_EXIT;
    assert_int_equal(iw_call_func(f, NULL, 0, NULL, 0), IW_EXIT);
    assert_int_equal(iw_store_exit_code(e->s), 3);

    assert_int_equal(call_i32(e, "double", &a, 1, &r), IW_OK);
    assert_int_equal(r, 8);
}

static void test_reentrancy(void **state)
{
    env *e = *state;
    iw_val a = i32v(5);
    int32_t r = 0;

    e->reenter_mode = REENTER_DOUBLE;
    assert_int_equal(call_i32(e, "call_reenter", &a, 1, &r), IW_OK);
    assert_int_equal(e->nested_status, IW_OK);
    assert_int_equal(r, 11); /* double(5) + 1 */

    /* A trap in the nested call is reported to the host, which recovers. */
    e->reenter_mode = REENTER_DIV_ZERO;
    assert_int_equal(call_i32(e, "call_reenter", &a, 1, &r), IW_OK);
    assert_int_equal(e->nested_status, IW_TRAP);
    assert_int_equal(r, 0); /* -1 + 1 */

    e->reenter_mode = REENTER_DOUBLE;
    a = i32v(100);
    assert_int_equal(call_i32(e, "call_reenter", &a, 1, &r), IW_OK);
    assert_int_equal(r, 201);
}

static void test_memory_api(void **state)
{
    env *e = *state;
    iw_memory *m = iw_instance_memory(e->inst);
    uint8_t buf[8];
    const uint8_t word[4] = {0x44, 0x33, 0x22, 0x11};
    iw_val a;
    int32_t r = 0;

    assert_non_null(m);
    assert_int_equal(iw_memory_size(m), 65536);
    assert_int_equal(iw_memory_read(m, 16, buf, 5), IW_OK);
    assert_memory_equal(buf, "hello", 5);

    assert_int_equal(iw_memory_write(m, 100, word, 4), IW_OK);
    a = i32v(100);
    assert_int_equal(call_i32(e, "load", &a, 1, &r), IW_OK);
    assert_int_equal((uint32_t)r, 0x11223344u);
    assert_int_equal(iw_memory_data(m)[103], 0x11);

    /* Bounds errors. */
    assert_int_equal(iw_memory_write(m, 65535, word, 2), IW_ARG);
    assert_int_equal(iw_memory_write(m, 65532, word, 4), IW_OK);
    assert_int_equal(iw_memory_read(m, 65536, buf, 1), IW_ARG);
    assert_int_equal(iw_memory_read(m, 65536, buf, 0), IW_OK);
    assert_int_equal(iw_memory_read(m, UINT64_MAX, buf, 2), IW_ARG);
    assert_int_equal(iw_memory_read(m, 1, buf, SIZE_MAX), IW_ARG);

    /* The guest sees the same bounds, and growing moves them. */
    a = i32v(65534);
    assert_int_equal(call_i32(e, "load", &a, 1, &r), IW_TRAP);
    assert_int_equal(iw_store_trap(e->s), IW_TRAP_OOB_MEMORY);
    assert_string_equal(iw_store_errmsg(e->s), "out of bounds memory access");
    assert_int_equal(iw_memory_grow(m, 1), 1);
    assert_int_equal(iw_memory_size(m), 2 * 65536);
    assert_int_equal(call_i32(e, "load", &a, 1, &r), IW_OK);
    assert_int_equal((uint32_t)r & 0xFFFFu, 0x1122u);
    assert_int_equal(iw_memory_grow(m, 1), -1); /* max is 2 pages */
    assert_int_equal(iw_memory_size(m), 2 * 65536);
}

static void test_globals(void **state)
{
    env *e = *state;
    iw_extern x;
    iw_val v;
    int32_t r = 0;

    assert_int_equal(iw_instance_export(e->inst, "k", &x), IW_OK);
    assert_int_equal(x.kind, IW_EXTERN_GLOBAL);
    v = iw_global_get(x.of.global);
    assert_int_equal(v.type, IW_I64);
    assert_int_equal(v.of.i64, 42);
    assert_int_equal(iw_global_mut(x.of.global), 0);
    assert_int_equal(iw_global_set(x.of.global, i64v(1)), IW_ARG);
    assert_int_equal(iw_global_get(x.of.global).of.i64, 42);

    assert_int_equal(iw_instance_export(e->inst, "counter", &x), IW_OK);
    assert_int_equal(iw_global_mut(x.of.global), 1);
    assert_int_equal(iw_global_set(x.of.global, i32v(10)), IW_OK);
    assert_int_equal(call_i32(e, "bump", NULL, 0, &r), IW_OK);
    assert_int_equal(r, 11);
    assert_int_equal(iw_global_get(x.of.global).of.i32, 11);
    assert_int_equal(iw_global_set(x.of.global, i64v(1)), IW_ARG);
    assert_int_equal(iw_global_get(x.of.global).of.i32, 11);

    assert_int_equal(call_i32(e, "get_limit", NULL, 0, &r), IW_OK);
    assert_int_equal(r, 7);
    assert_int_equal(iw_global_set(e->limit, i32v(8)), IW_ARG);
}

static void test_malformed_message(void **state)
{
    char err[256];
    iw_module *m = NULL;
    (void)state;

    err[0] = '\0';
    assert_int_equal(
        iw_module_load(malformed_wasm, sizeof malformed_wasm, &m, err,
                       sizeof err),
        IW_MALFORMED);
    assert_null(m);
    /* "<what> (type section, offset 0x..)": the offset of the bad byte (or
     * just past it). */
    assert_non_null(strstr(err, "type section"));
    assert_true(strstr(err, "offset 0xb") != NULL ||
                strstr(err, "offset 0xc") != NULL);

    /* Truncations of a valid module never crash and always explain (a cut
     * at a section boundary may leave a valid module). */
    for (size_t n = 0; n < sizeof main_wasm; n++) {
        iw_status st;
        err[0] = '\0';
        m = NULL;
        st = iw_module_load(main_wasm, n, &m, err, sizeof err);
        if (st == IW_OK) {
            assert_non_null(m);
            iw_module_free(m);
            continue;
        }
        assert_true(st == IW_MALFORMED || st == IW_INVALID);
        assert_null(m);
        assert_true(err[0] != '\0');
    }
}

static void test_call_arg_errors(void **state)
{
    env *e = *state;
    iw_func *dbl = iw_instance_func(e->inst, "double");
    iw_func *mix = iw_instance_func(e->inst, "mix");
    iw_val args[3], out;
    double d;

    assert_non_null(dbl);
    assert_non_null(mix);
    args[0] = i32v(1);
    args[1] = i32v(2);
    assert_int_equal(iw_call_func(dbl, args, 0, &out, 1), IW_ARG);
    assert_int_equal(iw_call_func(dbl, args, 2, &out, 1), IW_ARG);
    assert_int_equal(iw_call_func(dbl, args, 1, &out, 0), IW_ARG);
    args[0] = i64v(1);
    assert_int_equal(iw_call_func(dbl, args, 1, &out, 1), IW_ARG);
    assert_true(iw_store_errmsg(e->s)[0] != '\0');

    args[0] = i64v(2);
    args[1] = f64v(0.5); /* wrong: mix wants f32 here */
    args[2] = f64v(0.25);
    assert_int_equal(iw_call_func(mix, args, 3, &out, 1), IW_ARG);
    args[1] = f32v(0.5f);
    assert_int_equal(iw_call_func(mix, args, 3, &out, 1), IW_OK);
    assert_int_equal(out.type, IW_F64);
    memcpy(&d, &out.of.f64, sizeof d);
    assert_true(d == 2.75);
}

static void test_trap_leaves_store_usable(void **state)
{
    env *e = *state;
    iw_val a[2];
    int32_t r = 0;

    a[0] = i32v(1);
    a[1] = i32v(0);
    assert_int_equal(call_i32(e, "div", a, 2, &r), IW_TRAP);
    assert_int_equal(iw_store_trap(e->s), IW_TRAP_DIV_ZERO);
    assert_string_equal(iw_store_errmsg(e->s), "integer divide by zero");

    a[0] = i32v(INT32_MIN);
    a[1] = i32v(-1);
    assert_int_equal(call_i32(e, "div", a, 2, &r), IW_TRAP);
    assert_int_equal(iw_store_trap(e->s), IW_TRAP_INT_OVERFLOW);

    a[0] = i32v(7);
    a[1] = i32v(2);
    assert_int_equal(call_i32(e, "div", a, 2, &r), IW_OK);
    assert_int_equal(r, 3);

    /* call_indirect: good, type mismatch, out of range. */
    a[0] = i32v(0);
    a[1] = i32v(21);
    assert_int_equal(call_i32(e, "indirect", a, 2, &r), IW_OK);
    assert_int_equal(r, 42);
    a[0] = i32v(1);
    assert_int_equal(call_i32(e, "indirect", a, 2, &r), IW_TRAP);
    assert_int_equal(iw_store_trap(e->s), IW_TRAP_INDIRECT_MISMATCH);
    assert_string_equal(iw_store_errmsg(e->s), "indirect call type mismatch");
    a[0] = i32v(5);
    assert_int_equal(call_i32(e, "indirect", a, 2, &r), IW_TRAP);
    assert_string_equal(iw_store_errmsg(e->s), "undefined element");

    /* Many traps in a row do not leak stack or frames. */
    for (int i = 0; i < 1000; i++) {
        a[0] = i32v(i);
        a[1] = i32v(0);
        assert_int_equal(call_i32(e, "div", a, 2, &r), IW_TRAP);
    }
    a[0] = i32v(0);
    a[1] = i32v(50);
    assert_int_equal(call_i32(e, "indirect", a, 2, &r), IW_OK);
    assert_int_equal(r, 100);
}

static void test_link_errors(void **state)
{
    env *e = *state;
    char err[256];
    iw_extern imports[4];
    iw_instance *inst = NULL;
    iw_func *wrong;

    assert_true(make_imports(e, imports));
    assert_int_equal(
        iw_instantiate(e->s, e->mod, imports, 3, &inst, err, sizeof err),
        IW_LINK);
    assert_null(inst);

    /* env.add with the wrong signature. */
    wrong = iw_func_new_host(e->s, t_i32, 1, t_i32, 1, host_add, e);
    assert_non_null(wrong);
    imports[0].of.func = wrong;
    assert_int_equal(
        iw_instantiate(e->s, e->mod, imports, 4, &inst, err, sizeof err),
        IW_LINK);
    assert_non_null(strstr(err, "incompatible import type"));
    assert_non_null(strstr(err, "env.add"));

    /* Wrong kind: a global where a function is expected. */
    imports[0] = imports[3];
    assert_int_equal(
        iw_instantiate(e->s, e->mod, imports, 4, &inst, err, sizeof err),
        IW_LINK);

    /* A mutable global for an immutable import. */
    assert_true(make_imports(e, imports));
    imports[3].of.global = iw_global_new(e->s, i32v(1), 1);
    assert_int_equal(
        iw_instantiate(e->s, e->mod, imports, 4, &inst, err, sizeof err),
        IW_LINK);
    assert_null(inst);
}

static void test_segment_trap_keeps_writes(void **state)
{
    char err[256];
    iw_module *m = NULL;
    iw_store *s;
    iw_memory *mem;
    iw_limits lim = {1, 0, 0};
    iw_extern imp;
    iw_instance *inst = NULL;
    uint8_t b[2];
    (void)state;

    assert_int_equal(
        iw_module_load(segtrap_wasm, sizeof segtrap_wasm, &m, err, sizeof err),
        IW_OK);
    s = iw_store_new(NULL);
    assert_non_null(s);
    mem = iw_memory_new(s, lim);
    assert_non_null(mem);
    imp.kind = IW_EXTERN_MEMORY;
    imp.of.memory = mem;
    assert_int_equal(iw_instantiate(s, m, &imp, 1, &inst, err, sizeof err),
                     IW_TRAP);
    assert_null(inst);
    assert_string_equal(err, "out of bounds memory access");
    assert_int_equal(iw_store_trap(s), IW_TRAP_OOB_MEMORY);
    assert_int_equal(iw_memory_read(mem, 0, b, 2), IW_OK);
    assert_memory_equal(b, "ab", 2);
    assert_int_equal(iw_memory_data(mem)[65535], 0);
    iw_store_free(s);
    iw_module_free(m);
}

static void test_start_trap(void **state)
{
    char err[256];
    iw_module *m = NULL;
    iw_store *s;
    iw_memory *mem;
    iw_limits lim = {1, 0, 0};
    iw_extern imp;
    iw_instance *inst = NULL;
    (void)state;

    assert_int_equal(iw_module_load(starttrap_wasm, sizeof starttrap_wasm, &m,
                                    err, sizeof err),
                     IW_OK);
    s = iw_store_new(NULL);
    assert_non_null(s);
    mem = iw_memory_new(s, lim);
    assert_non_null(mem);
    imp.kind = IW_EXTERN_MEMORY;
    imp.of.memory = mem;
    assert_int_equal(iw_instantiate(s, m, &imp, 1, &inst, err, sizeof err),
                     IW_TRAP);
    assert_null(inst);
    assert_string_equal(err, "unreachable");
    assert_int_equal(iw_store_trap(s), IW_TRAP_UNREACHABLE);
    assert_memory_equal(iw_memory_data(mem) + 8, "ok", 2);
    iw_store_free(s);
    iw_module_free(m);
}

/* One full run under failure injection: load, instantiate, call.  Returns
 * true when everything succeeded; every failure must be a clean IW_NOMEM
 * (or a NULL object). */
static bool oom_run(uint64_t n)
{
    char err[256];
    env e;
    iw_extern imports[4];
    iw_status st;
    iw_val a[2], out;
    bool ok = false;
    iw_func *f;

    memset(&e, 0, sizeof e);
    iw_debug_fail_alloc_after(n);
    st = iw_module_load(main_wasm, sizeof main_wasm, &e.mod, err, sizeof err);
    if (st != IW_OK) {
        assert_int_equal(st, IW_NOMEM);
        assert_null(e.mod);
        goto done;
    }
    e.s = iw_store_new(NULL);
    if (!e.s)
        goto done;
    if (!make_imports(&e, imports))
        goto done;
    st = iw_instantiate(e.s, e.mod, imports, 4, &e.inst, err, sizeof err);
    if (st != IW_OK) {
        assert_int_equal(st, IW_NOMEM);
        assert_null(e.inst);
        goto done;
    }
    f = iw_instance_func(e.inst, "call_reenter");
    assert_non_null(f);
    a[0] = i32v(20);
    st = iw_call_func(f, a, 1, &out, 1);
    if (st != IW_OK) {
        /* The host turns a nested IW_NOMEM into a trap. */
        assert_true(st == IW_NOMEM || st == IW_TRAP);
        goto done;
    }
    assert_int_equal(out.of.i32, 41);
    f = iw_instance_func(e.inst, "call_add");
    a[0] = i32v(1);
    a[1] = i32v(2);
    st = iw_call_func(f, a, 2, &out, 1);
    if (st != IW_OK) {
        assert_int_equal(st, IW_NOMEM);
        goto done;
    }
    assert_int_equal(out.of.i32, 3);
    ok = true;
done:
    iw_debug_fail_alloc_after(0);
    iw_store_free(e.s);
    iw_module_free(e.mod);
    return ok;
}

/* Host memories through every path of the large-block allocator (alloc.c:
 * calloc below 64 KiB, mmap from there, growth from one to the other and
 * within mmap): contents kept, new bytes zero, shrink never happens. */
static void test_memory_growth_paths(void **state)
{
    iw_store *s = iw_store_new(NULL);
    iw_limits lim0 = {0, 40, 1}, lim1 = {1, 0, 0};
    iw_memory *m0, *m1;
    uint8_t *d;
    (void)state;
    assert_non_null(s);
    m0 = iw_memory_new(s, lim0);
    m1 = iw_memory_new(s, lim1);
    assert_non_null(m0);
    assert_non_null(m1);
    assert_int_equal(iw_memory_size(m0), 0);
    /* 0 -> 1 page (calloc -> mmap), then 1 -> 33 (mremap) */
    assert_int_equal(iw_memory_grow(m0, 1), 0);
    d = iw_memory_data(m0);
    for (uint32_t i = 0; i < 65536; i++)
        assert_int_equal(d[i], 0);
    memset(d, 0xA5, 65536);
    assert_int_equal(iw_memory_grow(m0, 32), 1);
    d = iw_memory_data(m0);
    assert_int_equal(iw_memory_size(m0), 33u * 65536u);
    for (uint32_t i = 0; i < 65536; i++)
        assert_int_equal(d[i], 0xA5);
    for (uint32_t i = 65536; i < 33u * 65536u; i += 4093)
        assert_int_equal(d[i], 0);
    assert_int_equal(d[33u * 65536u - 1], 0);
    assert_int_equal(iw_memory_grow(m0, 8), -1); /* max 40 */
    assert_int_equal(iw_memory_size(m0), 33u * 65536u);
    /* 1 page from the start (mmap), written at both ends, grown by 0 and 2 */
    d = iw_memory_data(m1);
    d[0] = 1;
    d[65535] = 2;
    assert_int_equal(iw_memory_grow(m1, 0), 1);
    assert_int_equal(iw_memory_grow(m1, 2), 1);
    d = iw_memory_data(m1);
    assert_int_equal(d[0], 1);
    assert_int_equal(d[65535], 2);
    assert_int_equal(d[65536], 0);
    assert_int_equal(d[3 * 65536 - 1], 0);
    iw_store_free(s); /* frees both with their sizes (ASan checks) */
}

static void test_out_of_memory(void **state)
{
    uint64_t n;
    (void)state;
    for (n = 1; n < 100000; n++)
        if (oom_run(n))
            break;
    assert_true(n > 1);
    assert_true(n < 100000);
    assert_true(oom_run(0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names),
        cmocka_unit_test_setup_teardown(test_imports_exports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_host_import_called, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_host_trap_and_exit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reentrancy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_api, setup, teardown),
        cmocka_unit_test_setup_teardown(test_globals, setup, teardown),
        cmocka_unit_test(test_malformed_message),
        cmocka_unit_test_setup_teardown(test_call_arg_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trap_leaves_store_usable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_link_errors, setup, teardown),
        cmocka_unit_test(test_segment_trap_keeps_writes),
        cmocka_unit_test(test_start_trap),
        cmocka_unit_test(test_memory_growth_paths),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
