/*
 * wasm_int.h - engine-internal structures shared by the decoder (decode.c),
 * the validator/translator (validate.c), the instantiator (instance.c) and
 * the interpreter (exec.c).  Nothing outside src/wasm/ includes this file.
 *
 * Internal names use the prefix iw__ (public ones iw_).
 */
#ifndef ISOFLOW_WASM_INT_H
#define ISOFLOW_WASM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The interrupt flag is written by any thread (iw_store_interrupt) and read
 * by the one running the store: a C11 atomic, or a volatile sig_atomic_t
 * where the compiler has no atomics. */
#ifndef __STDC_NO_ATOMICS__
#include <stdatomic.h>
typedef atomic_int iw__flag;
#define IW__FLAG_INIT(p) atomic_init((p), 0)
#define IW__FLAG_SET(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define IW__FLAG_GET(p) atomic_load_explicit((p), memory_order_relaxed)
#define IW__FLAG_TAKE(p) atomic_exchange_explicit((p), 0, memory_order_relaxed)
#else
#include <signal.h>
typedef volatile sig_atomic_t iw__flag;
#define IW__FLAG_INIT(p) (*(p) = 0)
#define IW__FLAG_SET(p, v) (*(p) = (v))
#define IW__FLAG_GET(p) (*(p))
#define IW__FLAG_TAKE(p) (*(p) ? (*(p) = 0, 1) : 0)
#endif

#include "wasm.h"

/* ------------------------------------------------------------------------ */
/* Allocation (alloc.c).  Every allocation of the engine goes through these
 * wrappers so that tests can fail the Nth one (iw_debug_fail_alloc_after).  */

void *iw__malloc(size_t n);
void *iw__calloc(size_t count, size_t size); /* checks count*size overflow */
void *iw__realloc(void *p, size_t n);
void iw__free(void *p);
/* Large zeroed blocks (alloc.c): mmap'd from IW_BIG bytes up, so that
 * untouched pages cost nothing; freed/grown with their size. */
void *iw__zalloc(size_t n);
void *iw__zrealloc(void *p, size_t old, size_t n);
void iw__zfree(void *p, size_t n);

/* A bump arena: many small allocations freed at once.  Module data lives in
 * the module's arena. */
typedef struct iw__arena_chunk iw__arena_chunk;
typedef struct iw__arena {
    iw__arena_chunk *head; /* most recent chunk */
} iw__arena;

/* Returns zeroed, 8-byte aligned memory, or NULL when out of memory. */
void *iw__arena_alloc(iw__arena *a, size_t n);
/* Allocates count*size with an overflow check (NULL on overflow). */
void *iw__arena_array(iw__arena *a, size_t count, size_t size);
void iw__arena_free(iw__arena *a);

/* snprintf into err (NULL-safe, truncating). */
void iw__errf(char *err, size_t errlen, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ------------------------------------------------------------------------ */
/* Runtime value slots.  Every value occupies one 64-bit slot:
 *   i32: zero-extended in the low 32 bits (read with (uint32_t)slot)
 *   i64: the 64 bits
 *   f32: the IEEE bits in the low 32 bits, upper bits zero
 *   f64: the IEEE bits
 *   funcref: (uint64_t)(uintptr_t)(iw_func *), 0 = null
 *   externref: (uint64_t)(uintptr_t)(void *), 0 = null                       */
typedef uint64_t iw__slot;

/* ------------------------------------------------------------------------ */
/* Decoded module.                                                          */

/* A constant expression as allowed by WebAssembly 2.0: exactly one of these
 * instructions followed by `end`. */
typedef enum iw__const_kind {
    IW__CONST_VALUE = 0,  /* i32/i64/f32/f64.const: value in .value (slot form) */
    IW__CONST_REF_NULL,   /* ref.null t: value 0 */
    IW__CONST_REF_FUNC,   /* ref.func .index */
    IW__CONST_GLOBAL_GET  /* global.get .index (an imported global) */
} iw__const_kind;

typedef struct iw__constexpr {
    uint8_t kind;   /* iw__const_kind */
    uint8_t type;   /* iw_valtype of the result */
    uint32_t index; /* function or global index */
    iw__slot value; /* for CONST_VALUE */
} iw__constexpr;

typedef struct iw__import {
    char *module;       /* NUL-terminated copy, in the module arena */
    char *name;         /* NUL-terminated copy */
    uint8_t kind;       /* iw_extern_kind */
    uint32_t index;     /* index in the function/table/memory/global space */
} iw__import;

typedef struct iw__export {
    char *name;     /* NUL-terminated copy */
    uint32_t len;   /* byte length (names may contain NUL in theory) */
    uint8_t kind;   /* iw_extern_kind */
    uint32_t index;
} iw__export;

typedef struct iw__tabletype {
    uint8_t elemtype; /* IW_FUNCREF or IW_EXTERNREF */
    iw_limits lim;
} iw__tabletype;

typedef struct iw__globaltype {
    uint8_t type; /* iw_valtype */
    uint8_t mut;
    iw__constexpr init; /* only for defined (non-imported) globals */
} iw__globaltype;

typedef enum iw__segmode {
    IW__SEG_ACTIVE = 0,
    IW__SEG_PASSIVE = 1,
    IW__SEG_DECLARATIVE = 2 /* element segments only */
} iw__segmode;

typedef struct iw__elem {
    uint8_t mode;        /* iw__segmode */
    uint8_t elemtype;    /* IW_FUNCREF or IW_EXTERNREF */
    uint32_t table;      /* active only */
    iw__constexpr offset;/* active only: i32 */
    uint32_t count;
    iw__constexpr *items;/* count items: REF_FUNC, REF_NULL or GLOBAL_GET */
} iw__elem;

typedef struct iw__data {
    uint8_t mode;         /* IW__SEG_ACTIVE or IW__SEG_PASSIVE */
    uint32_t mem;         /* active only */
    iw__constexpr offset; /* active only: i32 */
    uint32_t len;
    const uint8_t *bytes; /* copy in the module arena */
} iw__data;

/* Translated body of one defined function (see "Internal code" below). */
typedef struct iw__code {
    uint32_t *ops;        /* internal code, in the module arena */
    uint32_t nops;        /* number of 32-bit words */
    uint32_t nlocals;     /* declared locals, excluding parameters */
    uint32_t max_height;  /* max frame height in slots: params + locals +
                             deepest operand stack; the interpreter checks
                             stack room for this once per call */
    uint32_t body_offset; /* byte offset of the body in the binary */
} iw__code;

/* One section of the binary as it was read (for iw_module_section). */
typedef struct iw__section {
    struct iw__section *next;
    uint8_t id;
    uint32_t offset, size;    /* payload offset and size in the binary */
    const char *name;         /* custom sections: NUL-terminated copy */
    uint32_t name_len;
} iw__section;

struct iw_module {
    iw__arena arena;            /* owns everything below */

    uint32_t ntypes;
    iw_functype *types;

    uint32_t nimports;
    iw__import *imports;

    /* Index spaces: imported entries first, then defined ones. */
    uint32_t nfuncs, nimported_funcs;
    uint32_t *func_types;       /* type index of every function */
    iw__code *codes;            /* nfuncs - nimported_funcs entries */

    uint32_t ntables, nimported_tables;
    iw__tabletype *tables;

    uint32_t nmems, nimported_mems;
    iw_limits *mems;            /* in pages */

    uint32_t nglobals, nimported_globals;
    iw__globaltype *globals;

    uint32_t nexports;
    iw__export *exports;

    bool has_start;
    uint32_t start;

    uint32_t nelems;
    iw__elem *elems;

    uint32_t ndatas;            /* from the data section */
    iw__data *datas;
    bool has_datacount;
    uint32_t datacount;         /* from the data count section */

    /* C.refs: functions that ref.func may name inside code (referenced in
     * exports, global initialisers or element segments). One byte per
     * function, 1 = declared. */
    uint8_t *func_declared;

    char **func_names;          /* nfuncs entries or NULL: "name" section */

    struct iw__section *sections; /* every section in file order (list) */
    uint32_t nsections;
};

/* Decoder helpers shared with the validator: a bounded byte reader whose
 * errors name the offset.  All readers return false on failure after writing
 * the message into r->err. */
typedef struct iw__reader {
    const uint8_t *base; /* start of the whole binary (for offsets) */
    const uint8_t *p;    /* current position */
    const uint8_t *end;  /* end of the current region */
    char *err;
    size_t errlen;
} iw__reader;

bool iw__read_u8(iw__reader *r, uint8_t *out);
bool iw__read_u32(iw__reader *r, uint32_t *out);   /* unsigned LEB128 */
bool iw__read_s32(iw__reader *r, int32_t *out);    /* signed LEB128 */
bool iw__read_s33(iw__reader *r, int64_t *out);    /* block type index */
bool iw__read_s64(iw__reader *r, int64_t *out);
bool iw__read_f32(iw__reader *r, uint32_t *bits);  /* 4 raw bytes */
bool iw__read_f64(iw__reader *r, uint64_t *bits);  /* 8 raw bytes */
/* Byte offset of the current position in the binary. */
size_t iw__reader_offset(const iw__reader *r);

/* Validates the body of defined function `defidx` (0-based among defined
 * functions; function index = nimported_funcs + defidx) and translates it
 * into m->codes[defidx].  `r` covers exactly the body (locals + expr).
 * Everything in `m` up to the code section is complete (types, function
 * types, tables, memories, globals, elems, datacount, func_declared, and the
 * data count).  On failure returns IW_INVALID or IW_MALFORMED (or IW_NOMEM)
 * with a message naming the function index, byte offset and what was
 * expected.  Defined in validate.c. */
iw_status iw__translate_func(iw_module *m, uint32_t defidx, iw__reader *r);

/* ------------------------------------------------------------------------ */
/* Internal code (the translated form executed by exec.c).
 *
 * Code is an array of 32-bit words.  Each instruction is one opcode word
 * followed by its immediates.  Opcode numbers are the WebAssembly opcode
 * bytes, except that the 0xFC-prefixed instructions 0xFC xx are numbered
 * 0xE0 + xx (see IW__OP_FC below).  Only the opcodes listed here appear; no
 * LEB128, no block scanning happens at run time.
 *
 * The frame of a call is a run of slots starting at fp: parameters at fp[0
 * .. nparams-1], locals after them (zeroed on entry), the operand stack
 * above.  A "height" is an absolute slot index relative to fp.
 *
 *   0x00 unreachable                       traps
 *   0x03 loop                              a no-op checkpoint emitted at
 *                                          every loop head; branches to a
 *                                          loop label target this word
 *                                          (fuel/interrupt checks live here)
 *   0x04 if        ELSE                    pops i32; if 0 jump to ELSE
 *                                          (word index in ops)
 *   0x05 else      END                     unconditional jump to END (word
 *                                          index), no stack change; emitted at
 *                                          the end of an if's then-arm
 *   0x0C br        TARGET HEIGHT ARITY     move the top ARITY slots down to
 *                                          fp[HEIGHT..], set sp = fp+HEIGHT+
 *                                          ARITY, jump to TARGET
 *   0x0D br_if     TARGET HEIGHT ARITY     pops i32; if nonzero acts as br
 *   0x0E br_table  N  then N+1 triples TARGET HEIGHT ARITY (the last is the
 *                                          default); pops i32 index
 *   0x0F return    ARITY                   copy top ARITY slots to fp[0..],
 *                                          return to the caller.  Also
 *                                          emitted for the function's end
 *                                          and for branches to the function
 *                                          label.
 *   0x10 call      FUNCIDX                 index in the instance's function
 *                                          space (imports included)
 *   0x11 call_indirect TYPEIDX TABLEIDX
 *   0x1A drop
 *   0x1B select                            (typed select 0x1C is emitted as
 *                                          0x1B)
 *   0x20 local.get IDX / 0x21 local.set IDX / 0x22 local.tee IDX
 *                                          IDX is the slot index fp[IDX]
 *   0x23 global.get IDX / 0x24 global.set IDX
 *   0x25 table.get TABLE / 0x26 table.set TABLE
 *   0x28..0x3E loads and stores            OFFSET (the memarg offset; the
 *                                          alignment is dropped; memory 0)
 *   0x3F memory.size / 0x40 memory.grow    (no immediates)
 *   0x41 i32.const V                       V as 32 bits
 *   0x42 i64.const LO HI
 *   0x43 f32.const BITS
 *   0x44 f64.const LO HI
 *   0x45..0xC4 numeric instructions        no immediates
 *   0xD0 ref.null                          pushes 0 (type dropped)
 *   0xD1 ref.is_null
 *   0xD2 ref.func FUNCIDX
 *   0xE0..0xE7 trunc_sat (FC 0..7)         no immediates
 *   0xE8 memory.init DATAIDX   (FC 8)
 *   0xE9 data.drop DATAIDX     (FC 9)
 *   0xEA memory.copy           (FC 10)     (memory indices dropped)
 *   0xEB memory.fill           (FC 11)
 *   0xEC table.init ELEMIDX TABLEIDX (FC 12)
 *   0xED elem.drop ELEMIDX     (FC 13)
 *   0xEE table.copy DSTTABLE SRCTABLE (FC 14)
 *   0xEF table.grow TABLE      (FC 15)
 *   0xF0 table.size TABLE      (FC 16)
 *   0xF1 table.fill TABLE      (FC 17)
 *
 * Not emitted: nop, block, end (other than as return), the alignment of
 * memargs.
 *
 * Superinstructions (opcode words 0x100 and up) are produced by the
 * translator's peephole from straight runs of the instructions above, never
 * across a branch target (a loop head, the end of a block/if, an else) and
 * never across a control instruction; they behave exactly like the sequence
 * they replace (same stack effect, same traps; none is a checkpoint).  In
 * the list, A and B are local slot indexes, C an i32 constant, OP one of the
 * i32 operators of IW__FUSE_ARITH/IW__FUSE_CMP with its index K:
 *
 *   IW__OP_SUPER(IW__F_I, K)  C        [x] -> [x OP C]      (i32.const C; OP)
 *   IW__OP_SUPER(IW__F_L, K)  B        [x] -> [x OP fp[B]]  (local.get B; OP)
 *   IW__OP_SUPER(IW__F_LI, K) A C      [] -> [fp[A] OP C]
 *                                      (local.get A; i32.const C; OP)
 *   IW__OP_SUPER(IW__F_LL, K) A B      [] -> [fp[A] OP fp[B]]
 *                                      (local.get A; local.get B; OP)
 *   compares only, each followed by TARGET HEIGHT ARITY as br_if:
 *   IW__OP_SUPER(IW__F_BR, K)          [x y] -> branch if x OP y  (OP; br_if)
 *   IW__OP_SUPER(IW__F_BR_I, K)  C     [x] -> branch if x OP C
 *   IW__OP_SUPER(IW__F_BR_L, K)  B     [x] -> branch if x OP fp[B]
 *   IW__OP_SUPER(IW__F_BR_LI, K) A C   branch if fp[A] OP C
 *   IW__OP_SUPER(IW__F_BR_LL, K) A B   branch if fp[A] OP fp[B]
 *   IW__OP_BR_EQZ TARGET HEIGHT ARITY  (i32.eqz; br_if): branch if x == 0
 *   IW__OP_ADD_SET(form) ... X         i32.add in form 0 (plain), 1 (I),
 *                                      2 (L), 3 (LI), 4 (LL) with its
 *                                      immediates, then local.set X
 *   IW__OP_ADD_TEE(form) ... X         the same with local.tee X
 *   IW__OP_LOAD_L(op) A OFFSET         (local.get A; load OFFSET) for the
 *                                      loads 0x28..0x35
 *   IW__OP_CONST_SET C X               (i32.const C; local.set X)
 *   IW__OP_COPY A X                    (local.get A; local.set X)
 *
 * Round 2 (the home flow's JSON stages):
 *   IW__OP_SUPER64(form, K) ...        the nine forms above for the i64
 *                                      operators of IW__FUSE_ARITH64 /
 *                                      IW__FUSE_CMP64 (K as for i32); a
 *                                      constant C is two words LO HI, so
 *                                      I is `LO HI`, LI is `A LO HI`;
 *                                      compares push an i32
 *   IW__OP_BR_EQZ64 TARGET HEIGHT ARITY  (i64.eqz; br_if)
 *   IW__OP_EQZ_L A                     (local.get A; i32.eqz)
 *   IW__OP_BR_Z_L A TARGET HEIGHT ARITY  (local.get A; i32.eqz; br_if)
 *   IW__OP_BR_NZ_L A TARGET HEIGHT ARITY (local.get A; br_if)
 *   IW__OP_LOAD_TEE OFFSET X           (i32.load OFFSET; local.tee X)
 *   IW__OP_LOAD8U_TEE OFFSET X         (i32.load8_u OFFSET; local.tee X)
 *   IW__OP_LOADL_TEE A OFFSET X        (local.get A; i32.load OFFSET;
 *                                      local.tee X)
 *   IW__OP_LOADL8U_TEE A OFFSET X      (the same with i32.load8_u)
 *   IW__OP_MOVE8 O1 O2                 [dst src] -> []: (i32.load8_u O1;
 *                                      i32.store8 O2), the load's trap
 *                                      first
 *
 * Branches to a loop label carry TARGET = (word after the loop op) |
 * IW__BR_LOOP: the branch itself makes the loop head's checkpoint after
 * moving the values and setting sp (so a suspension there is exactly a
 * suspension at the loop op, which a resume re-executes).  The loop op
 * stays for the entry by falling through, so every loop iteration still
 * passes exactly one checkpoint.
 *
 * The switch fallback and the computed-goto dispatch of exec.c execute
 * the same words; opcode words are below IW__OP_COUNT.
 */
#define IW__OP_FC(sub) (0xE0u + (sub))

/* i32 operators with fused forms: X(K, WASM_OPCODE). */
#define IW__FUSE_ARITH(X)                                                    \
    X(0, 0x6A) X(1, 0x6B) X(2, 0x6C) X(3, 0x71) X(4, 0x72) X(5, 0x73)         \
    X(6, 0x74) X(7, 0x75) X(8, 0x76) X(9, 0x77) X(10, 0x78)
#define IW__FUSE_CMP(X)                                                      \
    X(11, 0x46) X(12, 0x47) X(13, 0x48) X(14, 0x49) X(15, 0x4A)              \
    X(16, 0x4B) X(17, 0x4C) X(18, 0x4D) X(19, 0x4E) X(20, 0x4F)
#define IW__F_I 0u
#define IW__F_L 1u
#define IW__F_LI 2u
#define IW__F_LL 3u
#define IW__F_BR 4u
#define IW__F_BR_I 5u
#define IW__F_BR_L 6u
#define IW__F_BR_LI 7u
#define IW__F_BR_LL 8u
#define IW__OP_SUPER(form, k) (0x100u + (form) * 32u + (k))
#define IW__OP_BR_EQZ 0x220u
#define IW__OP_ADD_SET(form) (0x221u + (form))
#define IW__OP_ADD_TEE(form) (0x226u + (form))
#define IW__OP_LOAD_L(op) (0x230u + ((op) - 0x28u))
#define IW__OP_CONST_SET 0x23Eu
#define IW__OP_COPY 0x23Fu
/* i64 operators with fused forms (same K as their i32 counterparts). */
#define IW__FUSE_ARITH64(X)                                                  \
    X(0, 0x7C) X(1, 0x7D) X(2, 0x7E) X(3, 0x83) X(4, 0x84) X(5, 0x85)         \
    X(6, 0x86) X(7, 0x87) X(8, 0x88)
#define IW__FUSE_CMP64(X)                                                    \
    X(11, 0x51) X(12, 0x52) X(13, 0x53) X(14, 0x54) X(15, 0x55)              \
    X(16, 0x56) X(17, 0x57) X(18, 0x58) X(19, 0x59) X(20, 0x5A)
#define IW__OP_SUPER64(form, k) (0x240u + (form) * 32u + (k))
#define IW__OP_BR_EQZ64 0x360u
#define IW__OP_EQZ_L 0x361u
#define IW__OP_BR_Z_L 0x362u
#define IW__OP_BR_NZ_L 0x363u
#define IW__OP_LOAD_TEE 0x364u
#define IW__OP_LOAD8U_TEE 0x365u
#define IW__OP_LOADL_TEE 0x366u
#define IW__OP_LOADL8U_TEE 0x367u
#define IW__OP_MOVE8 0x368u
#define IW__OP_COUNT 0x370u
/* Flag in a branch TARGET word: the target is a loop head (see above). */
#define IW__BR_LOOP 0x80000000u

/* ------------------------------------------------------------------------ */
/* Runtime objects (instance.c creates them, exec.c runs them).              */

/* Objects are chained into their store for freeing. */
typedef struct iw__obj {
    struct iw__obj *next;
    void (*destroy)(struct iw__obj *o);
} iw__obj;

struct iw_func {
    iw__obj obj;
    iw_functype type;          /* borrowed from the module, or owned copy for host */
    iw_instance *inst;         /* owner instance; NULL for host functions */
    const iw__code *code;      /* defined functions only */
    uint32_t index;            /* function index in the owner's module */
    iw_host_fn host;           /* host functions only */
    void *host_data;
    iw_store *store;
};

struct iw_table {
    iw__obj obj;
    uint8_t elemtype;
    uint32_t size;
    iw_limits lim;             /* declared limits (max may be absent) */
    iw__slot *elems;           /* size entries (funcref or externref slots) */
    iw_store *store;
};

struct iw_memory {
    iw__obj obj;
    uint8_t *data;             /* size bytes */
    uint64_t size;             /* bytes = pages * 65536 */
    uint32_t pages;
    iw_limits lim;             /* declared limits in pages */
    iw_store *store;
};

struct iw_global {
    iw__obj obj;
    uint8_t type;
    uint8_t mut;
    iw__slot val;
};

/* An element segment as seen by one instance (elem.drop empties it). */
typedef struct iw__elemrt {
    uint32_t count;            /* 0 after drop */
    iw__slot *items;           /* evaluated references */
} iw__elemrt;

struct iw_instance {
    iw__obj obj;
    iw_store *store;
    const iw_module *mod;
    iw_func **funcs;           /* mod->nfuncs */
    iw_table **tables;         /* mod->ntables */
    iw_memory **mems;          /* mod->nmems */
    iw_global **globals;       /* mod->nglobals */
    iw__elemrt *elems;         /* mod->nelems */
    uint8_t *data_dropped;     /* mod->ndatas flags */
    iw_memory *mem0;           /* mems[0] or NULL */
};

/* One activation record of the interpreter's explicit call stack. */
typedef struct iw__frame {
    const uint32_t *ret_pc;    /* where the caller continues */
    iw__slot *fp;              /* caller's frame pointer */
    iw_func *func;             /* the caller */
} iw__frame;

/* Metering (exec.c).  Every checkpoint (loop head, call, and the entry of
 * a call from the host) does one fast step: `if (--s->tick < 0) slow path`.
 * The slow path honours the interrupt flag, moves up to IW__TICK_INTERVAL
 * units of fuel from s->fuel into s->tick (the checkpoint that entered it
 * pays one), or traps "out of fuel" when none is left.  Hence:
 *   - remaining fuel is exactly s->fuel + s->tick at any moment outside a
 *     checkpoint (s->tick >= 0 there), also while a host function runs;
 *   - an interrupt is honoured within IW__TICK_INTERVAL + 1 checkpoints of
 *     the flag being set (at the first checkpoint when set before a call:
 *     the entry of an outermost call checks the flag itself);
 *   - with metering off the countdown still runs, so interrupts work. */
#define IW__TICK_INTERVAL 1024

/* A call suspended at a checkpoint by "out of fuel" or "interrupted"
 * (iw_store_resume continues it).  Only the outermost call from the host
 * can be suspended: its slots [base, sp) and frames [base_depth, depth)
 * stay in the store's stacks, while s->sp and s->depth go back to base and
 * base_depth as after any return.  The next outermost call reuses that
 * space, which is why it abandons the suspended call first. */
typedef struct iw__suspended {
    bool active;               /* a call is suspended */
    iw_func *func;             /* the function the host called (result types) */
    iw__slot *base;            /* its arguments, where its results go */
    uint32_t base_depth;       /* frame depth at its entry */
    uint32_t depth;            /* frame depth at the checkpoint */
    const uint32_t *pc;        /* where to continue (NULL before the entry) */
    iw__slot *fp;              /* frame pointer at the checkpoint */
    iw__slot *sp;              /* operand stack top at the checkpoint */
    iw_func *cur;              /* running function (NULL before the entry) */
    iw_func *callee;           /* non-NULL: suspended at the checkpoint of a
                                  call to callee (its arguments are on the
                                  stack); NULL: at the loop op at pc */
} iw__suspended;

struct iw_store {
    iw_config cfg;
    iw__obj *objs;             /* every object created in the store */

    iw__slot *stack;           /* cfg.stack_slots slots */
    iw__slot *sp;              /* first free slot (reentrant calls start here) */
    iw__frame *frames;         /* cfg.max_call_depth frames */
    uint32_t depth;            /* frames in use */
    uint32_t host_depth;       /* host functions running (called by the
                                  interpreter): 0 means a call entering
                                  the store is the outermost one; each is
                                  a possible host->guest re-entry (capped
                                  at cfg.max_host_depth) */

    int32_t tick;              /* checkpoints left before the slow path */
    bool fuel_on;              /* metering enabled (iw_store_set_fuel) */
    int64_t fuel;              /* when fuel_on: units left beyond s->tick */
    iw__flag interrupt;        /* set by iw_store_interrupt (any thread) */
    iw__suspended susp;        /* the suspended call, if any */

    iw_trap trap;              /* last trap */
    int64_t trap_func;         /* function index of the last trap, or -1 */
    int exit_code;
    char errmsg[256];
};

/* Host-call context (exec.c). */
struct iw_call {
    iw_store *store;
    iw_instance *inst;         /* calling instance (NULL when the host called) */
};

/* Records a trap (or error) in the store. fmt may be NULL to use the trap's
 * standard message. */
void iw__store_trap(iw_store *s, iw_trap t, int64_t func, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Links a newly created object into its store. */
void iw__store_adopt(iw_store *s, iw__obj *o, void (*destroy)(iw__obj *));

/* Structural signature equality (call_indirect and import checks). */
bool iw__functype_eq(const iw_functype *a, const iw_functype *b);

/* Runs f with its arguments already in place at s->sp[0 .. nparams-1];
 * results are left at s->sp[0 .. nresults-1].  Returns IW_OK, IW_TRAP or
 * IW_EXIT (details in the store).  Never suspends (a fuel or interrupt trap
 * unwinds); when no call is running it first abandons a suspended one.
 * Defined in exec.c; used by instantiation (start function). */
iw_status iw__exec(iw_store *s, iw_func *f);

/* Memory growth shared by memory.grow and iw_memory_grow: returns the old
 * page count or -1 (instance.c). */
int64_t iw__memory_grow(iw_memory *m, uint32_t delta);
/* Table growth: returns the old size or -1 (instance.c). */
int64_t iw__table_grow(iw_table *t, uint32_t delta, iw__slot init);

#endif /* ISOFLOW_WASM_INT_H */
