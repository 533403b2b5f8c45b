/*
 * wasm.h - the public embedding API of isoflow's WebAssembly engine.
 *
 * The engine decodes, validates and translates a module once (iw_module),
 * instantiates it inside a store (iw_store) and calls its exports.  It
 * implements WebAssembly 2.0 without SIMD.  Everything here is portable C11
 * with no dependencies.
 *
 * Threads: an iw_module is immutable after loading and may be shared by any
 * number of threads and stores.  A store and everything created in it
 * (instances, functions, memories, tables, globals) must be used by one
 * thread at a time.
 *
 * Lifetime: objects created in a store are owned by the store and are freed
 * together by iw_store_free(); pointers to them stay valid until then.
 */
#ifndef ISOFLOW_WASM_H
#define ISOFLOW_WASM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define IW_API __attribute__((visibility("default")))
#else
#define IW_API
#endif

/* ------------------------------------------------------------------------ */
/* Status codes: one table gives each code its name and message.           */

#define IW_STATUS_MAP(X)                                                     \
    X(OK, "ok")                                                              \
    X(MALFORMED, "malformed module")                                         \
    X(INVALID, "invalid module")                                             \
    X(LINK, "unlinkable module")                                             \
    X(TRAP, "trap")                                                          \
    X(NOMEM, "out of memory")                                                \
    X(ARG, "invalid argument")                                               \
    X(NOTFOUND, "not found")                                                 \
    X(EXIT, "guest exited")

typedef enum iw_status {
#define IW__S(name, msg) IW_##name,
    IW_STATUS_MAP(IW__S)
#undef IW__S
    IW_STATUS_COUNT
} iw_status;

/* Returns the static name ("IW_TRAP") / message ("trap") of a status. */
IW_API const char *iw_status_name(iw_status s);
IW_API const char *iw_status_msg(iw_status s);

/* Trap codes.  The message is the text the WebAssembly spec tests use. */
#define IW_TRAP_MAP(X)                                                       \
    X(NONE, "no trap")                                                       \
    X(UNREACHABLE, "unreachable")                                            \
    X(DIV_ZERO, "integer divide by zero")                                    \
    X(INT_OVERFLOW, "integer overflow")                                      \
    X(INVALID_CONV, "invalid conversion to integer")                         \
    X(OOB_MEMORY, "out of bounds memory access")                             \
    X(OOB_TABLE, "out of bounds table access")                               \
    X(UNDEFINED_ELEMENT, "undefined element")                                \
    X(UNINIT_ELEMENT, "uninitialized element")                               \
    X(INDIRECT_MISMATCH, "indirect call type mismatch")                      \
    X(STACK_EXHAUSTED, "call stack exhausted")                               \
    X(OUT_OF_FUEL, "out of fuel")                                            \
    X(INTERRUPTED, "interrupted")                                            \
    X(HOST, "host function error")                                           \
    X(EXIT, "exit")

typedef enum iw_trap {
#define IW__T(name, msg) IW_TRAP_##name,
    IW_TRAP_MAP(IW__T)
#undef IW__T
    IW_TRAP_COUNT
} iw_trap;

IW_API const char *iw_trap_msg(iw_trap t);

/* ------------------------------------------------------------------------ */
/* Types and values.                                                        */

typedef enum iw_valtype {
    IW_I32 = 0x7F,
    IW_I64 = 0x7E,
    IW_F32 = 0x7D,
    IW_F64 = 0x7C,
    IW_FUNCREF = 0x70,
    IW_EXTERNREF = 0x6F
} iw_valtype;

/* Returns "i32", "funcref", ... or "?" for anything else. */
IW_API const char *iw_valtype_name(uint8_t t);

/* A typed value.  Floats are carried as their IEEE-754 bit patterns so that
 * NaN payloads survive every platform.  A funcref is an iw_func* (NULL is
 * ref.null func); an externref is an opaque host pointer (NULL is
 * ref.null extern). */
typedef struct iw_val {
    uint8_t type; /* an iw_valtype */
    union {
        int32_t i32;
        int64_t i64;
        uint32_t f32; /* bits */
        uint64_t f64; /* bits */
        void *ref;
    } of;
} iw_val;

/* A function signature.  The arrays are borrowed from the module or store
 * that owns the type. */
typedef struct iw_functype {
    uint32_t nparams;
    uint32_t nresults;
    const uint8_t *params;  /* nparams iw_valtype bytes */
    const uint8_t *results; /* nresults iw_valtype bytes */
} iw_functype;

typedef struct iw_limits {
    uint32_t min;
    uint32_t max;     /* meaningful only when has_max */
    uint8_t has_max;
} iw_limits;

typedef enum iw_extern_kind {
    IW_EXTERN_FUNC = 0,
    IW_EXTERN_TABLE = 1,
    IW_EXTERN_MEMORY = 2,
    IW_EXTERN_GLOBAL = 3
} iw_extern_kind;

IW_API const char *iw_extern_kind_name(iw_extern_kind k); /* "func", ... */

/* Opaque handles. */
typedef struct iw_module iw_module;
typedef struct iw_store iw_store;
typedef struct iw_instance iw_instance;
typedef struct iw_func iw_func;
typedef struct iw_table iw_table;
typedef struct iw_memory iw_memory;
typedef struct iw_global iw_global;
typedef struct iw_call iw_call; /* context handed to host functions */

/* An external value: what an import is given and an export yields. */
typedef struct iw_extern {
    iw_extern_kind kind;
    union {
        iw_func *func;
        iw_table *table;
        iw_memory *memory;
        iw_global *global;
    } of;
} iw_extern;

/* Description of one import or export of a module.  All pointers are
 * borrowed from the module and live as long as it does.  Names are not
 * NUL-terminated inside the module; name/field are copies that are. */
typedef struct iw_extern_desc {
    const char *module; /* import module name (NULL for exports) */
    const char *name;   /* import field name or export name */
    size_t name_len;    /* byte length of name (it may contain NUL) */
    iw_extern_kind kind;
    uint32_t index;     /* index in the module's space of that kind */
    iw_functype func;   /* kind == FUNC */
    uint8_t elemtype;   /* kind == TABLE: IW_FUNCREF or IW_EXTERNREF */
    iw_limits limits;   /* kind == TABLE or MEMORY (pages) */
    uint8_t valtype;    /* kind == GLOBAL */
    uint8_t mut;        /* kind == GLOBAL: 1 when mutable */
} iw_extern_desc;

/* ------------------------------------------------------------------------ */
/* Modules.                                                                 */

/* Decodes, validates and translates a binary module.  `bytes` is borrowed
 * for the duration of the call only.  On success *out is a module the caller
 * frees with iw_module_free() (after every store using it is freed).  On
 * failure returns IW_MALFORMED, IW_INVALID or IW_NOMEM and writes a one-line
 * message into err (section, byte offset, function index, what was
 * expected). */
IW_API iw_status iw_module_load(const uint8_t *bytes, size_t len,
                                iw_module **out /* OUT */, char *err,
                                size_t errlen);
IW_API void iw_module_free(iw_module *m);

IW_API uint32_t iw_module_import_count(const iw_module *m);
IW_API uint32_t iw_module_export_count(const iw_module *m);
/* Fill *out with import/export i; IW_ARG when i is out of range. */
IW_API iw_status iw_module_import(const iw_module *m, uint32_t i,
                                  iw_extern_desc *out /* OUT */);
IW_API iw_status iw_module_export(const iw_module *m, uint32_t i,
                                  iw_extern_desc *out /* OUT */);
/* Name of function index `idx` from the name section, or NULL (borrowed). */
IW_API const char *iw_module_func_name(const iw_module *m, uint32_t idx);
/* Number of functions (imported + defined). */
IW_API uint32_t iw_module_func_count(const iw_module *m);

/* Sizes of a module's index spaces (imported + defined) and how many of
 * each are imported, the segments and the start function. */
typedef struct iw_module_counts {
    uint32_t types;
    uint32_t funcs, tables, memories, globals;       /* whole index spaces */
    uint32_t imported_funcs, imported_tables, imported_memories,
        imported_globals;
    uint32_t elems, datas;                           /* segments */
    int has_start;
    uint32_t start;                                  /* function index */
} iw_module_counts;
IW_API void iw_module_counts_get(const iw_module *m,
                                 iw_module_counts *out /* OUT */);
/* Limits (in pages) of memory `idx` (imported or defined); IW_ARG when out
 * of range. */
IW_API iw_status iw_module_memory_limits(const iw_module *m, uint32_t idx,
                                         iw_limits *out /* OUT */);

/* The sections of the binary in file order. */
typedef struct iw_section_desc {
    uint8_t id;           /* 0 custom, 1 type, ... 12 data count */
    uint32_t offset;      /* byte offset of the payload in the binary */
    uint32_t size;        /* payload bytes */
    const char *name;     /* custom sections: its name (borrowed, NUL-
                             terminated, may hold NUL: see name_len) */
    uint32_t name_len;
} iw_section_desc;
IW_API uint32_t iw_module_section_count(const iw_module *m);
/* Fills *out with section i; IW_ARG when out of range.  O(i). */
IW_API iw_status iw_module_section(const iw_module *m, uint32_t i,
                                   iw_section_desc *out /* OUT */);

/* ------------------------------------------------------------------------ */
/* Stores: the home of instances and runtime objects, with their limits.   */

typedef struct iw_config {
    uint32_t max_memory_pages; /* cap on every memory in the store (64 KiB pages) */
    uint32_t max_table_elems;  /* cap on every table in the store */
    uint32_t stack_slots;      /* value stack size in 8-byte slots */
    uint32_t max_call_depth;   /* nested calls before "call stack exhausted" */
    uint32_t max_host_depth;   /* nested host->guest re-entries (each uses
                                  the host's C stack) before "call stack
                                  exhausted" */
} iw_config;

/* Fills *cfg with the defaults (65536 pages, 10M table elements, 256K slots,
 * depth 10000, host re-entry depth 64). */
IW_API void iw_config_default(iw_config *cfg /* OUT */);

/* Creates a store; cfg may be NULL for the defaults (it is copied).  Returns
 * NULL when out of memory.  Caller frees with iw_store_free(). */
IW_API iw_store *iw_store_new(const iw_config *cfg);
IW_API void iw_store_free(iw_store *s);

/* The last error or trap recorded in the store by a failed call or
 * instantiation.  The message is borrowed and valid until the next call into
 * the store. */
IW_API iw_trap iw_store_trap(const iw_store *s);
IW_API const char *iw_store_errmsg(const iw_store *s);
/* Function index (in its module) where the last trap happened, or -1. */
IW_API int64_t iw_store_trap_func(const iw_store *s);
/* Metering.  Guest code reaches a "checkpoint" at every loop iteration and
 * every call; straight-line code between checkpoints is bounded by the size
 * of a function body.
 *
 * Fuel: when set (fuel >= 0) every checkpoint consumes one unit and the call
 * traps with "out of fuel" when none is left.  A negative value switches
 * metering off (the default).  Fuel persists across calls until set again. */
IW_API void iw_store_set_fuel(iw_store *s, int64_t fuel);
/* Remaining fuel, or -1 when metering is off. */
IW_API int64_t iw_store_get_fuel(const iw_store *s);

/* Interrupt: may be called from any thread (a watchdog).  The call running
 * in the store traps with "interrupted" within 1025 checkpoints; a host
 * function that blocks delays it until it returns.  When no call is
 * running, the next call traps at its entry.  Bulk memory/table operations
 * are charged one unit of fuel per 64 KiB / 1024 elements before they run.  The flag is cleared when the trap is raised, or by
 * iw_store_clear_interrupt(). */
IW_API void iw_store_interrupt(iw_store *s);
IW_API void iw_store_clear_interrupt(iw_store *s);

/* Resuming.  When a call traps with "out of fuel" or "interrupted" while no
 * host function is between the host's iw_call_func and the guest code, the
 * call is suspended instead of unwound: iw_store_can_resume() is 1 and,
 * after refilling fuel (or deciding to continue), iw_store_resume()
 * continues it exactly where it stopped, returning like iw_call_func.
 * iw_store_abandon() drops it; any other call into the store abandons it
 * too. */
IW_API int iw_store_can_resume(const iw_store *s);
IW_API iw_status iw_store_resume(iw_store *s, iw_val *results /* OUT */,
                                 size_t nresults);
IW_API void iw_store_abandon(iw_store *s);
/* Exit code given with IW_EXIT (see iw_call_exit). */
IW_API int iw_store_exit_code(const iw_store *s);

/* ------------------------------------------------------------------------ */
/* Instances.                                                               */

/* Instantiates `m` in `s`.  imports[i] satisfies import i of the module
 * (nimports must equal iw_module_import_count).  Runs element and data
 * initialisation and the start function.  On success *out is owned by the
 * store.  Fails with IW_LINK (wrong import count, kind or type: "incompatible
 * import type"), IW_TRAP (the start function or a segment trapped; the
 * message is also in the store), or IW_NOMEM.  m must outlive the store. */
IW_API iw_status iw_instantiate(iw_store *s, const iw_module *m,
                                const iw_extern *imports, size_t nimports,
                                iw_instance **out /* OUT */, char *err,
                                size_t errlen);

/* Looks up an export by name; IW_NOTFOUND when it does not exist. */
IW_API iw_status iw_instance_export(const iw_instance *inst, const char *name,
                                    iw_extern *out /* OUT */);
/* The same with an explicit byte length (export names may hold NUL). */
IW_API iw_status iw_instance_export_n(const iw_instance *inst,
                                      const char *name, size_t len,
                                      iw_extern *out /* OUT */);
/* Convenience: the exported function `name`, or NULL. */
IW_API iw_func *iw_instance_func(const iw_instance *inst, const char *name);
/* The instance's memory 0, or NULL when it has none (borrowed). */
IW_API iw_memory *iw_instance_memory(const iw_instance *inst);
IW_API const iw_module *iw_instance_module(const iw_instance *inst);

/* ------------------------------------------------------------------------ */
/* Functions and calls.                                                     */

/* A host function.  args holds the parameters, results must be filled with
 * the declared results (types preset).  Return IW_OK, or IW_TRAP after
 * iw_call_trap(), or IW_EXIT after iw_call_exit(). */
typedef iw_status (*iw_host_fn)(iw_call *call, const iw_val *args,
                                iw_val *results, void *user);

/* Creates a host function owned by the store.  params/results are copied.
 * `user` is borrowed and handed back to fn on every call. */
IW_API iw_func *iw_func_new_host(iw_store *s, const uint8_t *params,
                                 uint32_t nparams, const uint8_t *results,
                                 uint32_t nresults, iw_host_fn fn, void *user);
/* The function's signature (arrays borrowed from the function's owner). */
IW_API iw_functype iw_func_type(const iw_func *f);

/* Calls f with nargs arguments and receives nresults results.  Argument
 * count and types must match the signature (IW_ARG otherwise, with a
 * message in the store).  Returns IW_OK, IW_TRAP (code and message in the
 * store), IW_EXIT (exit code in the store) or IW_NOMEM. */
IW_API iw_status iw_call_func(iw_func *f, const iw_val *args, size_t nargs,
                              iw_val *results /* OUT */, size_t nresults);

/* Inside a host function: the calling instance's memory 0, or NULL. */
IW_API iw_memory *iw_call_memory(iw_call *call);
IW_API iw_instance *iw_call_instance(iw_call *call);
IW_API iw_store *iw_call_store(iw_call *call);
/* Records a trap with a message; the host function then returns IW_TRAP. */
IW_API iw_status iw_call_trap(iw_call *call, const char *msg);
/* Records an exit request; the host function then returns IW_EXIT. */
IW_API iw_status iw_call_exit(iw_call *call, int code);

/* ------------------------------------------------------------------------ */
/* Memories, tables, globals (created by the host or exported).             */

/* New memory of `min` pages (max optional).  Owned by the store; NULL when
 * the limits exceed the store's caps or memory runs out. */
IW_API iw_memory *iw_memory_new(iw_store *s, iw_limits lim);
IW_API uint64_t iw_memory_size(const iw_memory *m); /* in bytes */
/* Direct access to the bytes: borrowed, valid until the memory grows. */
IW_API uint8_t *iw_memory_data(iw_memory *m);
/* Bounds-checked copies; IW_ARG when [off, off+n) is outside the memory. */
IW_API iw_status iw_memory_read(const iw_memory *m, uint64_t off, void *dst,
                                size_t n);
IW_API iw_status iw_memory_write(iw_memory *m, uint64_t off, const void *src,
                                 size_t n);
/* Grows by delta pages; returns the old size in pages or -1. */
IW_API int64_t iw_memory_grow(iw_memory *m, uint32_t delta);

IW_API iw_table *iw_table_new(iw_store *s, uint8_t elemtype, iw_limits lim,
                              void *init);
IW_API uint32_t iw_table_size(const iw_table *t);
IW_API iw_status iw_table_get(const iw_table *t, uint32_t i,
                              iw_val *out /* OUT */);
IW_API iw_status iw_table_set(iw_table *t, uint32_t i, iw_val v);

IW_API iw_global *iw_global_new(iw_store *s, iw_val v, int mut);
IW_API iw_val iw_global_get(const iw_global *g);
/* IW_ARG when the global is immutable or the type differs. */
IW_API iw_status iw_global_set(iw_global *g, iw_val v);
IW_API int iw_global_mut(const iw_global *g);

/* ------------------------------------------------------------------------ */
/* Testing: make the Nth allocation from now fail (0 disables).  Used by the
 * out-of-memory tests; not thread-safe. */
IW_API void iw_debug_fail_alloc_after(uint64_t n);

#ifdef __cplusplus
}
#endif
#endif /* ISOFLOW_WASM_H */
