/*
 * exec.c - the interpreter: runs the translated internal code described in
 * wasm_int.h ("Internal code") on an explicit frame stack, and the public
 * call API (iw_call_func, host-call context) and metering (fuel, interrupts,
 * suspending and resuming a call).
 *
 * Numeric assumptions (checked nowhere, documented here): float and double
 * are IEEE-754 binary32/binary64, FLT_EVAL_METHOD is 0 (no excess
 * precision) and the floating-point environment stays in its default
 * round-to-nearest-even mode.  Under these, C's + - * / sqrt and the integer
 * to float conversions are correctly rounded as WebAssembly requires.
 */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "wasm_int.h"

/* Values handed to a host function live in a local array up to this many
 * parameters/results; larger signatures use the heap. */
#define HOST_LOCAL_VALS 16

/* ------------------------------------------------------------------------ */
/* Portable integer helpers (no signed overflow, no implementation-defined
 * conversions; the compiler folds them to plain instructions).            */

static inline int32_t s32(uint32_t u)
{
    return u <= (uint32_t)INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
}

static inline int64_t s64(uint64_t u)
{
    return u <= (uint64_t)INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

static inline uint32_t sx8_32(uint32_t x)
{
    return ((x & 0xFFu) ^ 0x80u) - 0x80u;
}

static inline uint32_t sx16_32(uint32_t x)
{
    return ((x & 0xFFFFu) ^ 0x8000u) - 0x8000u;
}

static inline uint64_t sx8_64(uint64_t x)
{
    return ((x & 0xFFu) ^ 0x80u) - (uint64_t)0x80u;
}

static inline uint64_t sx16_64(uint64_t x)
{
    return ((x & 0xFFFFu) ^ 0x8000u) - (uint64_t)0x8000u;
}

static inline uint64_t sx32_64(uint64_t x)
{
    return ((x & 0xFFFFFFFFu) ^ 0x80000000u) - (uint64_t)0x80000000u;
}

/* Signed comparisons through a bias (avoids signed conversions). */
static inline int lt_s32(uint32_t a, uint32_t b)
{
    return (a ^ 0x80000000u) < (b ^ 0x80000000u);
}

static inline int lt_s64(uint64_t a, uint64_t b)
{
    const uint64_t bias = (uint64_t)1 << 63;
    return (a ^ bias) < (b ^ bias);
}

static inline uint32_t shr_s32(uint32_t a, uint32_t n)
{
    n &= 31u;
    return (a >> 31) ? ~(~a >> n) : a >> n;
}

static inline uint64_t shr_s64(uint64_t a, uint64_t n)
{
    n &= 63u;
    return (a >> 63) ? ~(~a >> n) : a >> n;
}

static inline uint32_t rotl32(uint32_t a, uint32_t n)
{
    n &= 31u;
    return (a << n) | (a >> ((32u - n) & 31u));
}

static inline uint32_t rotr32(uint32_t a, uint32_t n)
{
    n &= 31u;
    return (a >> n) | (a << ((32u - n) & 31u));
}

static inline uint64_t rotl64(uint64_t a, uint64_t n)
{
    n &= 63u;
    return (a << n) | (a >> ((64u - n) & 63u));
}

static inline uint64_t rotr64(uint64_t a, uint64_t n)
{
    n &= 63u;
    return (a >> n) | (a << ((64u - n) & 63u));
}

/* Signed division on magnitudes; the callers exclude b == 0 and the
 * INT_MIN / -1 overflow (INT_MIN % -1 yields 0 naturally). */
static inline uint32_t div_s32(uint32_t a, uint32_t b)
{
    uint32_t na = a >> 31, nb = b >> 31;
    uint32_t q = (na ? 0u - a : a) / (nb ? 0u - b : b);
    return (na ^ nb) ? 0u - q : q;
}

static inline uint32_t rem_s32(uint32_t a, uint32_t b)
{
    uint32_t na = a >> 31;
    uint32_t r = (na ? 0u - a : a) % ((b >> 31) ? 0u - b : b);
    return na ? 0u - r : r;
}

static inline uint64_t div_s64(uint64_t a, uint64_t b)
{
    uint64_t na = a >> 63, nb = b >> 63;
    uint64_t q = (na ? 0u - a : a) / (nb ? 0u - b : b);
    return (na ^ nb) ? 0u - q : q;
}

static inline uint64_t rem_s64(uint64_t a, uint64_t b)
{
    uint64_t na = a >> 63;
    uint64_t r = (na ? 0u - a : a) % ((b >> 63) ? 0u - b : b);
    return na ? 0u - r : r;
}

#if defined(__GNUC__) && UINT_MAX == 0xFFFFFFFFu &&                         \
    ULLONG_MAX == 0xFFFFFFFFFFFFFFFFull
#define IW_HAVE_BITOPS 1
#endif

static inline uint32_t clz32(uint32_t x)
{
#ifdef IW_HAVE_BITOPS
    return x ? (uint32_t)__builtin_clz(x) : 32u;
#else
    uint32_t n = 0;
    if (!x)
        return 32u;
    while (!(x & 0x80000000u)) {
        x <<= 1;
        n++;
    }
    return n;
#endif
}

static inline uint32_t ctz32(uint32_t x)
{
#ifdef IW_HAVE_BITOPS
    return x ? (uint32_t)__builtin_ctz(x) : 32u;
#else
    uint32_t n = 0;
    if (!x)
        return 32u;
    while (!(x & 1u)) {
        x >>= 1;
        n++;
    }
    return n;
#endif
}

static inline uint32_t popcnt32(uint32_t x)
{
#ifdef IW_HAVE_BITOPS
    return (uint32_t)__builtin_popcount(x);
#else
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (x * 0x01010101u) >> 24;
#endif
}

static inline uint64_t clz64(uint64_t x)
{
#ifdef IW_HAVE_BITOPS
    return x ? (uint64_t)__builtin_clzll(x) : 64u;
#else
    uint32_t hi = (uint32_t)(x >> 32);
    return hi ? clz32(hi) : 32u + clz32((uint32_t)x);
#endif
}

static inline uint64_t ctz64(uint64_t x)
{
#ifdef IW_HAVE_BITOPS
    return x ? (uint64_t)__builtin_ctzll(x) : 64u;
#else
    uint32_t lo = (uint32_t)x;
    return lo ? ctz32(lo) : 32u + ctz32((uint32_t)(x >> 32));
#endif
}

static inline uint64_t popcnt64(uint64_t x)
{
#ifdef IW_HAVE_BITOPS
    return (uint64_t)__builtin_popcountll(x);
#else
    return popcnt32((uint32_t)x) + popcnt32((uint32_t)(x >> 32));
#endif
}

/* ------------------------------------------------------------------------ */
/* Little-endian memory access on any host.                                 */

static inline int host_is_big_endian(void)
{
    const union {
        uint16_t u;
        uint8_t b[2];
    } t = {0x0102};
    return t.b[0] == 0x01;
}

static inline uint16_t bswap16(uint16_t x)
{
    return (uint16_t)((x >> 8) | (x << 8));
}

static inline uint32_t bswap32(uint32_t x)
{
    return (x >> 24) | ((x >> 8) & 0xFF00u) | ((x << 8) & 0xFF0000u) |
           (x << 24);
}

static inline uint64_t bswap64(uint64_t x)
{
    return ((uint64_t)bswap32((uint32_t)x) << 32) | bswap32((uint32_t)(x >> 32));
}

static inline uint32_t ld16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return host_is_big_endian() ? bswap16(v) : v;
}

static inline uint32_t ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return host_is_big_endian() ? bswap32(v) : v;
}

static inline uint64_t ld64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return host_is_big_endian() ? bswap64(v) : v;
}

static inline void st16(uint8_t *p, uint16_t v)
{
    if (host_is_big_endian())
        v = bswap16(v);
    memcpy(p, &v, 2);
}

static inline void st32(uint8_t *p, uint32_t v)
{
    if (host_is_big_endian())
        v = bswap32(v);
    memcpy(p, &v, 4);
}

static inline void st64(uint8_t *p, uint64_t v)
{
    if (host_is_big_endian())
        v = bswap64(v);
    memcpy(p, &v, 8);
}

/* ------------------------------------------------------------------------ */
/* Floating point: values travel as bits; these convert and implement the
 * operations whose WebAssembly semantics differ from plain C.             */

#define F32_SIGN 0x80000000u
#define F32_QUIET 0x00400000u
#define F64_SIGN ((uint64_t)1 << 63)
#define F64_QUIET ((uint64_t)1 << 51)

static inline float f32_of(iw__slot s)
{
    uint32_t b = (uint32_t)s;
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static inline double f64_of(iw__slot s)
{
    double d;
    memcpy(&d, &s, 8);
    return d;
}

static inline iw__slot slot_f32(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static inline iw__slot slot_f64(double d)
{
    uint64_t b;
    memcpy(&b, &d, 8);
    return b;
}

/* min/max: a NaN operand gives that NaN quieted; -0 < +0. */
static inline iw__slot f32_min(iw__slot as, iw__slot bs)
{
    float a = f32_of(as), b = f32_of(bs);
    if (a != a)
        return (uint32_t)as | F32_QUIET;
    if (b != b)
        return (uint32_t)bs | F32_QUIET;
    if (a == b) /* equal, or +0/-0: the sign bits OR (-0 wins) */
        return (uint32_t)as | (uint32_t)bs;
    return a < b ? (uint32_t)as : (uint32_t)bs;
}

static inline iw__slot f32_max(iw__slot as, iw__slot bs)
{
    float a = f32_of(as), b = f32_of(bs);
    if (a != a)
        return (uint32_t)as | F32_QUIET;
    if (b != b)
        return (uint32_t)bs | F32_QUIET;
    if (a == b) /* +0 wins */
        return (uint32_t)as & (uint32_t)bs;
    return a > b ? (uint32_t)as : (uint32_t)bs;
}

static inline iw__slot f64_min(iw__slot as, iw__slot bs)
{
    double a = f64_of(as), b = f64_of(bs);
    if (a != a)
        return as | F64_QUIET;
    if (b != b)
        return bs | F64_QUIET;
    if (a == b)
        return as | bs;
    return a < b ? as : bs;
}

static inline iw__slot f64_max(iw__slot as, iw__slot bs)
{
    double a = f64_of(as), b = f64_of(bs);
    if (a != a)
        return as | F64_QUIET;
    if (b != b)
        return bs | F64_QUIET;
    if (a == b)
        return as & bs;
    return a > b ? as : bs;
}

/* nearest (round half to even) without depending on the rounding mode:
 * for |x| < 2^23 the fraction x - trunc(x) is exact, so the decision is
 * exact; larger values are already integral.  The sign of x is kept (so
 * -0.5 gives -0). */
static iw__slot f32_nearest(iw__slot xs)
{
    float x = f32_of(xs), r;
    int32_t i;
    float d;
    if (x != x)
        return (uint32_t)xs | F32_QUIET;
    if (!(x > -8388608.0f && x < 8388608.0f))
        return (uint32_t)xs;
    i = (int32_t)x;
    d = x - (float)i;
    if (d > 0.5f || (d == 0.5f && (i % 2) != 0))
        i++;
    else if (d < -0.5f || (d == -0.5f && (i % 2) != 0))
        i--;
    r = (float)i;
    return slot_f32(r) | ((uint32_t)xs & F32_SIGN);
}

static iw__slot f64_nearest(iw__slot xs)
{
    double x = f64_of(xs), r;
    int64_t i;
    double d;
    if (x != x)
        return xs | F64_QUIET;
    if (!(x > -4503599627370496.0 && x < 4503599627370496.0))
        return xs;
    i = (int64_t)x;
    d = x - (double)i;
    if (d > 0.5 || (d == 0.5 && (i % 2) != 0))
        i++;
    else if (d < -0.5 || (d == -0.5 && (i % 2) != 0))
        i--;
    r = (double)i;
    return slot_f64(r) | (xs & F64_SIGN);
}

/* u64 -> f32 rounded once: values >= 2^53 first fold their low 11 bits into
 * a sticky bit (far below f32's rounding bit), which makes the u64 -> double
 * step exact, so only the double -> float step rounds. */
static inline float u64_to_f32(uint64_t x)
{
    if (x >> 53)
        x = (x & ~(uint64_t)0x7FF) | ((x & 0x7FF) ? 0x800u : 0u);
    return (float)(double)x;
}

static inline float i64_to_f32(uint64_t x)
{
    if (x >> 63)
        return -u64_to_f32(0u - x);
    return u64_to_f32(x);
}

/* ------------------------------------------------------------------------ */
/* Value conversion between iw_val and slots.                               */

static iw__slot val_to_slot(uint8_t type, const iw_val *v)
{
    switch (type) {
    case IW_I32:
        return (uint32_t)v->of.i32;
    case IW_I64:
        return (uint64_t)v->of.i64;
    case IW_F32:
        return v->of.f32;
    case IW_F64:
        return v->of.f64;
    default:
        return (uint64_t)(uintptr_t)v->of.ref;
    }
}

static void slot_to_val(uint8_t type, iw__slot s, iw_val *v)
{
    v->type = type;
    switch (type) {
    case IW_I32:
        v->of.i32 = s32((uint32_t)s);
        break;
    case IW_I64:
        v->of.i64 = s64(s);
        break;
    case IW_F32:
        v->of.f32 = (uint32_t)s;
        break;
    case IW_F64:
        v->of.f64 = s;
        break;
    default:
        v->of.ref = (void *)(uintptr_t)s;
        break;
    }
}

/* True when `need` slots starting at p fit in the store's value stack. */
static inline bool stack_room(const iw_store *s, const iw__slot *p,
                              uint64_t need)
{
    size_t used = (size_t)(p - s->stack);
    return used <= s->cfg.stack_slots &&
           need <= (uint64_t)(s->cfg.stack_slots - used);
}

/* ------------------------------------------------------------------------ */
/* Host calls.                                                              */

/* Calls host function hf with its nparams arguments at base[0..] and, on
 * IW_OK, leaves its results at base[0..nresults-1].  `caller` is the calling
 * instance (NULL when the embedder called hf directly), caller_idx the
 * calling function's index for trap reports (-1 if none).  The caller has
 * checked stack room for max(nparams, nresults) slots at base.  Nested
 * calls made by the host start at base + nparams.  Returns IW_OK, IW_TRAP,
 * IW_EXIT or IW_NOMEM; everything but IW_OK is recorded in the store. */
static iw_status call_host(iw_store *s, iw_func *hf, iw_instance *caller,
                           iw__slot *base, int64_t caller_idx)
{
    const iw_functype *t = &hf->type;
    iw_val local[2 * HOST_LOCAL_VALS];
    iw_val *args = local, *res = local + HOST_LOCAL_VALS, *heap = NULL;
    iw_trap old_trap = s->trap;
    struct iw_call call;
    iw_status st;
    uint32_t i;

    if (t->nparams > HOST_LOCAL_VALS || t->nresults > HOST_LOCAL_VALS) {
        heap = iw__calloc((size_t)t->nparams + t->nresults, sizeof(iw_val));
        if (!heap) {
            iw__store_trap(s, IW_TRAP_NONE, caller_idx,
                           "out of memory calling a host function");
            return IW_NOMEM;
        }
        args = heap;
        res = heap + t->nparams;
    }
    for (i = 0; i < t->nparams; i++)
        slot_to_val(t->params[i], base[i], &args[i]);
    for (i = 0; i < t->nresults; i++) {
        res[i].type = t->results[i];
        res[i].of.i64 = 0;
    }
    call.store = s;
    call.inst = caller;
    s->sp = base + t->nparams;
    s->trap = IW_TRAP_NONE;

    s->host_depth++; /* calls into the store from here are re-entries */
    st = hf->host(&call, args, res, hf->host_data);
    s->host_depth--;

    switch (st) {
    case IW_OK:
        s->trap = old_trap;
        for (i = 0; i < t->nresults; i++)
            base[i] = val_to_slot(t->results[i], &res[i]);
        break;
    case IW_TRAP:
        if (s->trap == IW_TRAP_NONE)
            iw__store_trap(s, IW_TRAP_HOST, caller_idx, NULL);
        else if (s->trap_func < 0)
            s->trap_func = caller_idx;
        break;
    case IW_EXIT:
        if (s->trap != IW_TRAP_EXIT)
            iw__store_trap(s, IW_TRAP_EXIT, caller_idx, NULL);
        break;
    case IW_NOMEM:
        if (s->trap == IW_TRAP_NONE)
            iw__store_trap(s, IW_TRAP_NONE, caller_idx,
                           "host function ran out of memory");
        break;
    default:
        iw__store_trap(s, IW_TRAP_HOST, caller_idx,
                       "host function returned %s", iw_status_name(st));
        st = IW_TRAP;
        break;
    }
    iw__free(heap);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Metering.                                                                */

#if defined(__GNUC__) || defined(__clang__)
#define IW_NOINLINE __attribute__((noinline))
#else
#define IW_NOINLINE
#endif

/* The slow path of a checkpoint, entered when s->tick went negative (the
 * checkpoint has not paid yet).  Consumes a pending interrupt (returns
 * IW_TRAP_INTERRUPTED), or returns IW_TRAP_OUT_OF_FUEL when metering is on
 * and no fuel is left; both leave s->tick at 0, so re-executing the
 * checkpoint (a resume) comes back here.  Otherwise re-arms the countdown,
 * charging this checkpoint, and returns IW_TRAP_NONE. */
static IW_NOINLINE iw_trap checkpoint_slow(iw_store *s)
{
    int64_t chunk;

    s->tick = 0;
    if (IW__FLAG_GET(&s->interrupt) && IW__FLAG_TAKE(&s->interrupt))
        return IW_TRAP_INTERRUPTED;
    if (!s->fuel_on) {
        s->tick = IW__TICK_INTERVAL - 1;
        return IW_TRAP_NONE;
    }
    if (s->fuel <= 0)
        return IW_TRAP_OUT_OF_FUEL;
    chunk = s->fuel < IW__TICK_INTERVAL ? s->fuel : IW__TICK_INTERVAL;
    s->fuel -= chunk;
    s->tick = (int32_t)(chunk - 1);
    return IW_TRAP_NONE;
}

/* Moves the countdown back into the fuel bank so that the next checkpoint
 * takes the slow path (remaining fuel is unchanged). */
static void tick_flush(iw_store *s)
{
    if (s->fuel_on)
        s->fuel += s->tick;
    s->tick = 0;
}

/* Drops the suspended call, if any.  While a call is suspended s->sp and
 * s->depth are already back at its base (nothing else runs in an idle
 * store), so only the record goes. */
static inline void drop_suspended(iw_store *s)
{
    s->susp.active = false;
}

/* ------------------------------------------------------------------------ */
/* The interpreter.                                                         */

/* Dispatch.  With GNU C (gcc, clang) the handlers are labels and every
 * handler ends in its own indirect jump through a table of label addresses
 * indexed by the opcode word ("computed goto": one jump per instruction,
 * each predicted separately).  Elsewhere, or with -DIW_NO_THREADED, a
 * portable `switch` runs the same handlers.  CASE(op) starts the handler of
 * a Wasm-numbered opcode, SCASE(name, op) the one of a superinstruction,
 * NEXT() fetches and dispatches the next opcode word. */
#if defined(__GNUC__) && !defined(IW_NO_THREADED)
#define IW_THREADED 1
#define CASE(op) L_##op:
#define SCASE(name, op) L_##name:
#define DEFAULT_CASE L_default:
#define NEXT() goto *optab[*pc++]
#else
#define IW_THREADED 0
#define CASE(op) case op:
#define SCASE(name, op) case op:
#define DEFAULT_CASE default:
#define NEXT() goto dispatch
#endif

/* Every Wasm-numbered opcode with a CASE handler in run() (the label table
 * of the threaded dispatch is built from this list; a handler missing here
 * is an unused-label error, an entry without a handler an undefined one). */
#define STD_OPS(X)                                                           \
    X(0x00) X(0x01) X(0x03) X(0x04) X(0x05) X(0x0C) X(0x0D) X(0x0E)          \
    X(0x0F) X(0x10) X(0x11) X(0x1A) X(0x1B) X(0x20) X(0x21) X(0x22)          \
    X(0x23) X(0x24) X(0x25) X(0x26) X(0x28) X(0x29) X(0x2A) X(0x2B)          \
    X(0x2C) X(0x2D) X(0x2E) X(0x2F) X(0x30) X(0x31) X(0x32) X(0x33)          \
    X(0x34) X(0x35) X(0x36) X(0x37) X(0x38) X(0x39) X(0x3A) X(0x3B)          \
    X(0x3C) X(0x3D) X(0x3E) X(0x3F) X(0x40) X(0x41) X(0x42) X(0x43)          \
    X(0x44) X(0x45) X(0x46) X(0x47) X(0x48) X(0x49) X(0x4A) X(0x4B)          \
    X(0x4C) X(0x4D) X(0x4E) X(0x4F) X(0x50) X(0x51) X(0x52) X(0x53)          \
    X(0x54) X(0x55) X(0x56) X(0x57) X(0x58) X(0x59) X(0x5A) X(0x5B)          \
    X(0x5C) X(0x5D) X(0x5E) X(0x5F) X(0x60) X(0x61) X(0x62) X(0x63)          \
    X(0x64) X(0x65) X(0x66) X(0x67) X(0x68) X(0x69) X(0x6A) X(0x6B)          \
    X(0x6C) X(0x6D) X(0x6E) X(0x6F) X(0x70) X(0x71) X(0x72) X(0x73)          \
    X(0x74) X(0x75) X(0x76) X(0x77) X(0x78) X(0x79) X(0x7A) X(0x7B)          \
    X(0x7C) X(0x7D) X(0x7E) X(0x7F) X(0x80) X(0x81) X(0x82) X(0x83)          \
    X(0x84) X(0x85) X(0x86) X(0x87) X(0x88) X(0x89) X(0x8A) X(0x8B)          \
    X(0x8C) X(0x8D) X(0x8E) X(0x8F) X(0x90) X(0x91) X(0x92) X(0x93)          \
    X(0x94) X(0x95) X(0x96) X(0x97) X(0x98) X(0x99) X(0x9A) X(0x9B)          \
    X(0x9C) X(0x9D) X(0x9E) X(0x9F) X(0xA0) X(0xA1) X(0xA2) X(0xA3)          \
    X(0xA4) X(0xA5) X(0xA6) X(0xA7) X(0xA8) X(0xA9) X(0xAA) X(0xAB)          \
    X(0xAC) X(0xAD) X(0xAE) X(0xAF) X(0xB0) X(0xB1) X(0xB2) X(0xB3)          \
    X(0xB4) X(0xB5) X(0xB6) X(0xB7) X(0xB8) X(0xB9) X(0xBA) X(0xBB)          \
    X(0xBC) X(0xBD) X(0xBE) X(0xBF) X(0xC0) X(0xC1) X(0xC2) X(0xC3)          \
    X(0xC4) X(0xD0) X(0xD1) X(0xD2) X(0xE0) X(0xE1) X(0xE2) X(0xE3)          \
    X(0xE4) X(0xE5) X(0xE6) X(0xE7) X(0xE8) X(0xE9) X(0xEA) X(0xEB)          \
    X(0xEC) X(0xED) X(0xEE) X(0xEF) X(0xF0) X(0xF1)
#define TRAP(code)                                                           \
    do {                                                                     \
        tc = (code);                                                         \
        goto trap;                                                           \
    } while (0)

#define RELOAD_MEM()                                                         \
    do {                                                                     \
        iw_memory *m0_ = inst->mem0;                                         \
        mbase = m0_ ? m0_->data : NULL;                                      \
        msize = m0_ ? m0_->size : 0;                                         \
    } while (0)

/* A checkpoint (see "Metering" in wasm_int.h): one decrement and test on
 * the fast path.  On a fuel or interrupt trap, `tc` is set, `fixup` puts
 * pc/callee where a resume must re-execute this checkpoint, and control goes
 * to `suspend`, which suspends or unwinds. */
#define CHECKPOINT(fixup)                                                    \
    do {                                                                     \
        if (--s->tick < 0) {                                                 \
            tc = checkpoint_slow(s);                                         \
            if (tc != IW_TRAP_NONE) {                                        \
                fixup;                                                       \
                goto suspend;                                                \
            }                                                                \
        }                                                                    \
    } while (0)

/* Bulk operations (memory.fill/copy/init, table.fill/copy/init) do work in
 * proportion to their length, so with fuel on they are charged before they
 * run: one unit per 64 KiB of memory or 1024 table elements.  A bulk
 * operation the remaining fuel cannot pay for traps "out of fuel" and
 * unwinds (it is not a checkpoint, so it does not suspend). */
#define BULK_FUEL(units)                                                     \
    do {                                                                     \
        if (s->fuel_on && (units) > 0) {                                     \
            s->tick -= (int32_t)(units);                                     \
            if (s->tick < 0) {                                               \
                s->fuel += s->tick;                                          \
                s->tick = 0;                                                 \
                if (s->fuel < 0) {                                           \
                    s->fuel = 0;                                             \
                    TRAP(IW_TRAP_OUT_OF_FUEL);                               \
                }                                                            \
            }                                                                \
        }                                                                    \
    } while (0)

/* Operand helpers.  a is the deeper operand, b the top. */
#define UN32(expr)                                                           \
    {                                                                        \
        uint32_t a = (uint32_t)sp[-1];                                       \
        sp[-1] = (uint32_t)(expr);                                           \
    }                                                                        \
    NEXT()
#define BIN32(expr)                                                          \
    {                                                                        \
        uint32_t a = (uint32_t)sp[-2], b = (uint32_t)sp[-1];                 \
        sp--;                                                                \
        sp[-1] = (uint32_t)(expr);                                           \
    }                                                                        \
    NEXT()
#define UN64(expr)                                                           \
    {                                                                        \
        uint64_t a = sp[-1];                                                 \
        sp[-1] = (uint64_t)(expr);                                           \
    }                                                                        \
    NEXT()
#define BIN64(expr)                                                          \
    {                                                                        \
        uint64_t a = sp[-2], b = sp[-1];                                     \
        sp--;                                                                \
        sp[-1] = (uint64_t)(expr);                                           \
    }                                                                        \
    NEXT()
/* i64 comparisons produce an i32. */
#define CMP64(expr)                                                          \
    {                                                                        \
        uint64_t a = sp[-2], b = sp[-1];                                     \
        sp--;                                                                \
        sp[-1] = (expr) ? 1u : 0u;                                           \
    }                                                                        \
    NEXT()
/* Rounding operations via libm; NaNs are quieted here because libm may
 * return a signaling NaN unchanged. */
#define ROUNDF32(fn)                                                         \
    {                                                                        \
        float a = f32_of(sp[-1]);                                            \
        sp[-1] = a != a ? ((uint32_t)sp[-1] | F32_QUIET) : slot_f32(fn(a));  \
    }                                                                        \
    NEXT()
#define ROUNDF64(fn)                                                         \
    {                                                                        \
        double a = f64_of(sp[-1]);                                           \
        sp[-1] = a != a ? (sp[-1] | F64_QUIET) : slot_f64(fn(a));            \
    }                                                                        \
    NEXT()
#define BINF32(expr)                                                         \
    {                                                                        \
        float a = f32_of(sp[-2]), b = f32_of(sp[-1]);                        \
        sp--;                                                                \
        sp[-1] = slot_f32(expr);                                             \
    }                                                                        \
    NEXT()
#define CMPF32(expr)                                                         \
    {                                                                        \
        float a = f32_of(sp[-2]), b = f32_of(sp[-1]);                        \
        sp--;                                                                \
        sp[-1] = (expr) ? 1u : 0u;                                           \
    }                                                                        \
    NEXT()
#define BINF64(expr)                                                         \
    {                                                                        \
        double a = f64_of(sp[-2]), b = f64_of(sp[-1]);                       \
        sp--;                                                                \
        sp[-1] = slot_f64(expr);                                             \
    }                                                                        \
    NEXT()
#define CMPF64(expr)                                                         \
    {                                                                        \
        double a = f64_of(sp[-2]), b = f64_of(sp[-1]);                       \
        sp--;                                                                \
        sp[-1] = (expr) ? 1u : 0u;                                           \
    }                                                                        \
    NEXT()

/* Loads: the address is the top operand, OFFSET the immediate.  The
 * effective address is computed in 64 bits so it cannot wrap. */
#define LOAD(n, expr)                                                        \
    {                                                                        \
        uint64_t ea = (uint64_t)(uint32_t)sp[-1] + pc[0];                    \
        const uint8_t *p;                                                    \
        pc++;                                                                \
        if (ea + (n) > msize)                                                \
            TRAP(IW_TRAP_OOB_MEMORY);                                        \
        p = mbase + ea;                                                      \
        sp[-1] = (expr);                                                     \
    }                                                                        \
    NEXT()
/* Stores: [address, value]. */
#define STORE(n, stmt)                                                       \
    {                                                                        \
        uint64_t ea = (uint64_t)(uint32_t)sp[-2] + pc[0];                    \
        uint64_t v = sp[-1];                                                 \
        uint8_t *p;                                                          \
        pc++;                                                                \
        if (ea + (n) > msize)                                                \
            TRAP(IW_TRAP_OOB_MEMORY);                                        \
        p = mbase + ea;                                                      \
        stmt;                                                                \
        sp -= 2;                                                             \
    }                                                                        \
    NEXT()

/* Trapping float -> integer truncation: NaN is an invalid conversion, a
 * value whose truncation lies outside (LO, HI) exclusive an overflow. */
#define TRUNC(ftype, of, lo, hi, conv)                                       \
    {                                                                        \
        ftype x = of(sp[-1]);                                                \
        if (x != x)                                                          \
            TRAP(IW_TRAP_INVALID_CONV);                                      \
        if (!(x > (lo) && x < (hi)))                                         \
            TRAP(IW_TRAP_INT_OVERFLOW);                                      \
        sp[-1] = conv;                                                       \
    }                                                                        \
    NEXT()
/* Saturating truncation: NaN -> 0, out of range -> the nearest bound. */
#define TRUNC_SAT(ftype, of, lo, hi, minv, maxv, conv)                       \
    {                                                                        \
        ftype x = of(sp[-1]);                                                \
        if (x != x)                                                          \
            sp[-1] = 0;                                                      \
        else if (!(x > (lo)))                                                \
            sp[-1] = (minv);                                                 \
        else if (!(x < (hi)))                                                \
            sp[-1] = (maxv);                                                 \
        else                                                                 \
            sp[-1] = conv;                                                   \
    }                                                                        \
    NEXT()

/* Exclusive bounds of the truncating conversions.  For f32 sources the
 * lower signed bound is the next float below INT_MIN (INT_MIN itself is
 * representable and valid). */
#define F32_I32_LO -2147483904.0f
#define F32_I32_HI 2147483648.0f
#define F64_I32_LO -2147483649.0
#define F64_I32_HI 2147483648.0
#define F32_U32_HI 4294967296.0f
#define F64_U32_HI 4294967296.0
#define F32_I64_LO -9223373136366403584.0f
#define F32_I64_HI 9223372036854775808.0f
#define F64_I64_LO -9223372036854777856.0
#define F64_I64_HI 9223372036854775808.0
#define F32_U64_HI 18446744073709551616.0f
#define F64_U64_HI 18446744073709551616.0

/* Superinstruction handlers (formats in wasm_int.h).  BX_<wasm opcode>
 * computes the i32 operator on a and b (uint32_t). */
#define BX_0x6A(a, b) ((a) + (b))
#define BX_0x6B(a, b) ((a) - (b))
#define BX_0x6C(a, b) ((a) * (b))
#define BX_0x71(a, b) ((a) & (b))
#define BX_0x72(a, b) ((a) | (b))
#define BX_0x73(a, b) ((a) ^ (b))
#define BX_0x74(a, b) ((a) << ((b) & 31u))
#define BX_0x75(a, b) shr_s32((a), (b))
#define BX_0x76(a, b) ((a) >> ((b) & 31u))
#define BX_0x77(a, b) rotl32((a), (b))
#define BX_0x78(a, b) rotr32((a), (b))
#define BX_0x46(a, b) ((a) == (b))
#define BX_0x47(a, b) ((a) != (b))
#define BX_0x48(a, b) lt_s32((a), (b))
#define BX_0x49(a, b) ((a) < (b))
#define BX_0x4A(a, b) lt_s32((b), (a))
#define BX_0x4B(a, b) ((a) > (b))
#define BX_0x4C(a, b) (!lt_s32((b), (a)))
#define BX_0x4D(a, b) ((a) <= (b))
#define BX_0x4E(a, b) (!lt_s32((a), (b)))
#define BX_0x4F(a, b) ((a) >= (b))

/* The i64 operators (a, b uint64_t). */
#define BX_0x7C(a, b) ((a) + (b))
#define BX_0x7D(a, b) ((a) - (b))
#define BX_0x7E(a, b) ((a) * (b))
#define BX_0x83(a, b) ((a) & (b))
#define BX_0x84(a, b) ((a) | (b))
#define BX_0x85(a, b) ((a) ^ (b))
#define BX_0x86(a, b) ((a) << ((b) & 63u))
#define BX_0x87(a, b) shr_s64((a), (b))
#define BX_0x88(a, b) ((a) >> ((b) & 63u))
#define BX_0x51(a, b) ((a) == (b))
#define BX_0x52(a, b) ((a) != (b))
#define BX_0x53(a, b) lt_s64((a), (b))
#define BX_0x54(a, b) ((a) < (b))
#define BX_0x55(a, b) lt_s64((b), (a))
#define BX_0x56(a, b) ((a) > (b))
#define BX_0x57(a, b) (!lt_s64((b), (a)))
#define BX_0x58(a, b) ((a) <= (b))
#define BX_0x59(a, b) (!lt_s64((a), (b)))
#define BX_0x5A(a, b) ((a) >= (b))
/* An i64 constant immediate LO HI at p. */
#define IMM64(p) ((uint64_t)(p)[0] | (uint64_t)(p)[1] << 32)

/* The four operand forms I, L, LI, LL of operator K (Wasm opcode W). */
#define GEN_FUSED(K, W)                                                      \
    SCASE(i_##K, IW__OP_SUPER(IW__F_I, K)) {                                 \
        uint32_t a = (uint32_t)sp[-1], b = pc[0];                            \
        pc++;                                                                \
        sp[-1] = (uint32_t)(BX_##W(a, b));                                   \
        NEXT();                                                              \
    }                                                                        \
    SCASE(l_##K, IW__OP_SUPER(IW__F_L, K)) {                                 \
        uint32_t a = (uint32_t)sp[-1], b = (uint32_t)fp[pc[0]];              \
        pc++;                                                                \
        sp[-1] = (uint32_t)(BX_##W(a, b));                                   \
        NEXT();                                                              \
    }                                                                        \
    SCASE(li_##K, IW__OP_SUPER(IW__F_LI, K)) {                               \
        uint32_t a = (uint32_t)fp[pc[0]], b = pc[1];                         \
        pc += 2;                                                             \
        *sp++ = (uint32_t)(BX_##W(a, b));                                    \
        NEXT();                                                              \
    }                                                                        \
    SCASE(ll_##K, IW__OP_SUPER(IW__F_LL, K)) {                               \
        uint32_t a = (uint32_t)fp[pc[0]], b = (uint32_t)fp[pc[1]];           \
        pc += 2;                                                             \
        *sp++ = (uint32_t)(BX_##W(a, b));                                    \
        NEXT();                                                              \
    }
/* Compare-and-branch forms of compare K; pc ends at TARGET HEIGHT ARITY as
 * do_br expects. */
#define GEN_FUSED_BR(K, W)                                                   \
    SCASE(b_##K, IW__OP_SUPER(IW__F_BR, K)) {                                \
        uint32_t a = (uint32_t)sp[-2], b = (uint32_t)sp[-1];                 \
        sp -= 2;                                                             \
        if (BX_##W(a, b))                                                    \
            goto do_br;                                                      \
        pc += 3;                                                             \
        NEXT();                                                              \
    }                                                                        \
    SCASE(bi_##K, IW__OP_SUPER(IW__F_BR_I, K)) {                             \
        uint32_t a = (uint32_t)sp[-1], b = pc[0];                            \
        sp--;                                                                \
        pc++;                                                                \
        if (BX_##W(a, b))                                                    \
            goto do_br;                                                      \
        pc += 3;                                                             \
        NEXT();                                                              \
    }                                                                        \
    SCASE(bl_##K, IW__OP_SUPER(IW__F_BR_L, K)) {                             \
        uint32_t a = (uint32_t)sp[-1], b = (uint32_t)fp[pc[0]];              \
        sp--;                                                                \
        pc++;                                                                \
        if (BX_##W(a, b))                                                    \
            goto do_br;                                                      \
        pc += 3;                                                             \
        NEXT();                                                              \
    }                                                                        \
    SCASE(bli_##K, IW__OP_SUPER(IW__F_BR_LI, K)) {                           \
        uint32_t a = (uint32_t)fp[pc[0]], b = pc[1];                         \
        pc += 2;                                                             \
        if (BX_##W(a, b))                                                    \
            goto do_br;                                                      \
        pc += 3;                                                             \
        NEXT();                                                              \
    }                                                                        \
    SCASE(bll_##K, IW__OP_SUPER(IW__F_BR_LL, K)) {                           \
        uint32_t a = (uint32_t)fp[pc[0]], b = (uint32_t)fp[pc[1]];           \
        pc += 2;                                                             \
        if (BX_##W(a, b))                                                    \
            goto do_br;                                                      \
        pc += 3;                                                             \
        NEXT();                                                              \
    }
/* The same nine forms for i64 operator K (Wasm opcode W); constants are
 * two words. */
#define GEN_FUSED64(K, W)                                                    \
    SCASE(i64_##K, IW__OP_SUPER64(IW__F_I, K)) {                             \
        uint64_t a = sp[-1], b = IMM64(pc);                                  \
        pc += 2;                                                             \
        sp[-1] = (uint64_t)(BX_##W(a, b));                                   \
        NEXT();                                                              \
    }                                                                        \
    SCASE(l64_##K, IW__OP_SUPER64(IW__F_L, K)) {                             \
        uint64_t a = sp[-1], b = fp[pc[0]];                                  \
        pc++;                                                                \
        sp[-1] = (uint64_t)(BX_##W(a, b));                                   \
        NEXT();                                                              \
    }                                                                        \
    SCASE(li64_##K, IW__OP_SUPER64(IW__F_LI, K)) {                           \
        uint64_t a = fp[pc[0]], b = IMM64(pc + 1);                           \
        pc += 3;                                                             \
        *sp++ = (uint64_t)(BX_##W(a, b));                                    \
        NEXT();                                                              \
    }                                                                        \
    SCASE(ll64_##K, IW__OP_SUPER64(IW__F_LL, K)) {                           \
        uint64_t a = fp[pc[0]], b = fp[pc[1]];                               \
        pc += 2;                                                             \
        *sp++ = (uint64_t)(BX_##W(a, b));                                    \
        NEXT();                                                              \
    }
#define GEN_FUSED64_BR(K, W)                                                 \
    SCASE(b64_##K, IW__OP_SUPER64(IW__F_BR, K)) {                            \
        uint64_t a = sp[-2], b = sp[-1];                                     \
        sp -= 2;                                                             \
        if (BX_##W(a, b))                                                    \
            goto do_br;                                                      \
        pc += 3;                                                             \
        NEXT();                                                              \
    }                                                                        \
    SCASE(bi64_##K, IW__OP_SUPER64(IW__F_BR_I, K)) {                         \
        uint64_t a = sp[-1], b = IMM64(pc);                                  \
        sp--;                                                                \
        pc += 2;                                                             \
        if (BX_##W(a, b))                                                    \
            goto do_br;                                                      \
        pc += 3;                                                             \
        NEXT();                                                              \
    }                                                                        \
    SCASE(bl64_##K, IW__OP_SUPER64(IW__F_BR_L, K)) {                         \
        uint64_t a = sp[-1], b = fp[pc[0]];                                  \
        sp--;                                                                \
        pc++;                                                                \
        if (BX_##W(a, b))                                                    \
            goto do_br;                                                      \
        pc += 3;                                                             \
        NEXT();                                                              \
    }                                                                        \
    SCASE(bli64_##K, IW__OP_SUPER64(IW__F_BR_LI, K)) {                       \
        uint64_t a = fp[pc[0]], b = IMM64(pc + 1);                           \
        pc += 3;                                                             \
        if (BX_##W(a, b))                                                    \
            goto do_br;                                                      \
        pc += 3;                                                             \
        NEXT();                                                              \
    }                                                                        \
    SCASE(bll64_##K, IW__OP_SUPER64(IW__F_BR_LL, K)) {                       \
        uint64_t a = fp[pc[0]], b = fp[pc[1]];                               \
        pc += 2;                                                             \
        if (BX_##W(a, b))                                                    \
            goto do_br;                                                      \
        pc += 3;                                                             \
        NEXT();                                                              \
    }
/* An i32.load (n = 4) or i32.load8_u (n = 1) from address ADDR + OFFSET
 * (pc[OI]), then local.tee X (pc[OI + 1]); WORDS immediates in all. */
#define GEN_LOAD_TEE(N, OPW, ADDR, OI, WORDS, n, expr, PUSH)                 \
    SCASE(N, OPW) {                                                          \
        uint64_t ea = (uint64_t)(uint32_t)(ADDR) + pc[OI];                   \
        uint32_t x = pc[(OI) + 1];                                           \
        const uint8_t *p;                                                    \
        iw__slot v;                                                          \
        pc += (WORDS);                                                       \
        if (ea + (n) > msize)                                                \
            TRAP(IW_TRAP_OOB_MEMORY);                                        \
        p = mbase + ea;                                                      \
        v = (expr);                                                          \
        fp[x] = v;                                                           \
        PUSH = v;                                                            \
        NEXT();                                                              \
    }

/* i32.add in its five forms followed by local.set/tee X (STMT stores r). */
#define GEN_ADD_SET(N, OPM, STMT)                                            \
    SCASE(add_##N##_p, OPM(0u)) {                                            \
        uint32_t x = pc[0];                                                  \
        iw__slot r = (uint32_t)((uint32_t)sp[-2] + (uint32_t)sp[-1]);        \
        sp -= 2;                                                             \
        pc++;                                                                \
        STMT;                                                                \
        NEXT();                                                              \
    }                                                                        \
    SCASE(add_##N##_i, OPM(1u)) {                                            \
        uint32_t x = pc[1];                                                  \
        iw__slot r = (uint32_t)((uint32_t)sp[-1] + pc[0]);                   \
        sp--;                                                                \
        pc += 2;                                                             \
        STMT;                                                                \
        NEXT();                                                              \
    }                                                                        \
    SCASE(add_##N##_l, OPM(2u)) {                                            \
        uint32_t x = pc[1];                                                  \
        iw__slot r = (uint32_t)((uint32_t)sp[-1] + (uint32_t)fp[pc[0]]);     \
        sp--;                                                                \
        pc += 2;                                                             \
        STMT;                                                                \
        NEXT();                                                              \
    }                                                                        \
    SCASE(add_##N##_li, OPM(3u)) {                                           \
        uint32_t x = pc[2];                                                  \
        iw__slot r = (uint32_t)((uint32_t)fp[pc[0]] + pc[1]);                \
        pc += 3;                                                             \
        STMT;                                                                \
        NEXT();                                                              \
    }                                                                        \
    SCASE(add_##N##_ll, OPM(4u)) {                                           \
        uint32_t x = pc[2];                                                  \
        iw__slot r = (uint32_t)((uint32_t)fp[pc[0]] + (uint32_t)fp[pc[1]]);  \
        pc += 3;                                                             \
        STMT;                                                                \
        NEXT();                                                              \
    }
/* A load whose address is local A: pushes the loaded value. */
#define GEN_LOAD_L(W, n, expr)                                               \
    SCASE(ldl_##W, IW__OP_LOAD_L(W)) {                                       \
        uint64_t ea = (uint64_t)(uint32_t)fp[pc[0]] + pc[1];                 \
        const uint8_t *p;                                                    \
        pc += 2;                                                             \
        if (ea + (n) > msize)                                                \
            TRAP(IW_TRAP_OOB_MEMORY);                                        \
        p = mbase + ea;                                                      \
        *sp++ = (expr);                                                      \
        NEXT();                                                              \
    }

#if IW_THREADED
/* Label-table entries of the threaded dispatch. */
#define TBL_STD(op) [op] = &&L_##op,
#define TBL_FUSED(K, W)                                                      \
    [IW__OP_SUPER(IW__F_I, K)] = &&L_i_##K,                                  \
    [IW__OP_SUPER(IW__F_L, K)] = &&L_l_##K,                                  \
    [IW__OP_SUPER(IW__F_LI, K)] = &&L_li_##K,                                \
    [IW__OP_SUPER(IW__F_LL, K)] = &&L_ll_##K,
#define TBL_FUSED_BR(K, W)                                                   \
    [IW__OP_SUPER(IW__F_BR, K)] = &&L_b_##K,                                 \
    [IW__OP_SUPER(IW__F_BR_I, K)] = &&L_bi_##K,                              \
    [IW__OP_SUPER(IW__F_BR_L, K)] = &&L_bl_##K,                              \
    [IW__OP_SUPER(IW__F_BR_LI, K)] = &&L_bli_##K,                            \
    [IW__OP_SUPER(IW__F_BR_LL, K)] = &&L_bll_##K,
#define TBL_ADD_SET(N, OPM)                                                  \
    [OPM(0u)] = &&L_add_##N##_p, [OPM(1u)] = &&L_add_##N##_i,                \
    [OPM(2u)] = &&L_add_##N##_l, [OPM(3u)] = &&L_add_##N##_li,               \
    [OPM(4u)] = &&L_add_##N##_ll,
#define TBL_LOAD_L(W) [IW__OP_LOAD_L(W)] = &&L_ldl_##W,
#define TBL_FUSED64(K, W)                                                    \
    [IW__OP_SUPER64(IW__F_I, K)] = &&L_i64_##K,                              \
    [IW__OP_SUPER64(IW__F_L, K)] = &&L_l64_##K,                              \
    [IW__OP_SUPER64(IW__F_LI, K)] = &&L_li64_##K,                            \
    [IW__OP_SUPER64(IW__F_LL, K)] = &&L_ll64_##K,
#define TBL_FUSED64_BR(K, W)                                                 \
    [IW__OP_SUPER64(IW__F_BR, K)] = &&L_b64_##K,                             \
    [IW__OP_SUPER64(IW__F_BR_I, K)] = &&L_bi64_##K,                          \
    [IW__OP_SUPER64(IW__F_BR_L, K)] = &&L_bl64_##K,                          \
    [IW__OP_SUPER64(IW__F_BR_LI, K)] = &&L_bli64_##K,                        \
    [IW__OP_SUPER64(IW__F_BR_LL, K)] = &&L_bll64_##K,
#endif

/*
 * The interpreter loop.  Runs f with its arguments at s->sp[0..nparams-1]
 * and leaves its results at s->sp[0..nresults-1]; s->sp and s->depth are
 * restored on every return, a suspension included.  With f == NULL it
 * continues the suspended call s->susp instead (its results go to
 * s->susp.base).  Wasm-to-wasm calls push iw__frame records on s->frames
 * (no C recursion); the entry itself goes through the call path with a
 * frame whose ret_pc is NULL, and returning into that frame ends the run.
 *
 * The caller guarantees a live store (s->stack, s->frames, s->sp set).
 * When `resumable` and this is the outermost activation (no host function
 * between the host and here), a fuel or interrupt trap at a checkpoint
 * suspends the call (s->susp) instead of unwinding it.  Returns IW_OK,
 * IW_TRAP or IW_EXIT (IW_NOMEM only if a host call with many values cannot
 * allocate); details are recorded in the store.
 */
#if IW_THREADED
/* Labels as values and computed goto are GNU extensions: allowed here only. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
#endif
static iw_status run(iw_store *s, iw_func *f, bool resumable)
{
    const bool outer = s->host_depth == 0;
    iw__slot *entry_sp;
    uint32_t entry_depth;
    iw_func *cur = NULL, *callee = f;
    iw_instance *inst = NULL;
    const uint32_t *ops = NULL, *pc = NULL;
    iw__slot *fp = NULL, *sp;
    uint8_t *mbase = NULL;
    uint64_t msize = 0;
    iw_trap tc = IW_TRAP_NONE;
    iw_status st;
#if IW_THREADED
    /* Unused opcode words go to the default handler; the later entries
     * override the range (GNU C). */
#pragma GCC diagnostic push
#if defined(__clang__)
#pragma GCC diagnostic ignored "-Winitializer-overrides"
#else
#pragma GCC diagnostic ignored "-Woverride-init"
#endif
    static const void *const optab[IW__OP_COUNT] = {
        [0 ... IW__OP_COUNT - 1] = &&L_default,
        STD_OPS(TBL_STD)
        IW__FUSE_ARITH(TBL_FUSED)
        IW__FUSE_CMP(TBL_FUSED)
        IW__FUSE_CMP(TBL_FUSED_BR)
        [IW__OP_BR_EQZ] = &&L_br_eqz,
        [IW__OP_CONST_SET] = &&L_const_set,
        [IW__OP_COPY] = &&L_copy,
        TBL_ADD_SET(set, IW__OP_ADD_SET)
        TBL_ADD_SET(tee, IW__OP_ADD_TEE)
        TBL_LOAD_L(0x28) TBL_LOAD_L(0x29) TBL_LOAD_L(0x2A) TBL_LOAD_L(0x2B)
        TBL_LOAD_L(0x2C) TBL_LOAD_L(0x2D) TBL_LOAD_L(0x2E) TBL_LOAD_L(0x2F)
        TBL_LOAD_L(0x30) TBL_LOAD_L(0x31) TBL_LOAD_L(0x32) TBL_LOAD_L(0x33)
        TBL_LOAD_L(0x34) TBL_LOAD_L(0x35)
        IW__FUSE_ARITH64(TBL_FUSED64)
        IW__FUSE_CMP64(TBL_FUSED64)
        IW__FUSE_CMP64(TBL_FUSED64_BR)
        [IW__OP_BR_EQZ64] = &&L_br_eqz64,
        [IW__OP_EQZ_L] = &&L_eqz_l,
        [IW__OP_BR_Z_L] = &&L_br_z_l,
        [IW__OP_BR_NZ_L] = &&L_br_nz_l,
        [IW__OP_LOAD_TEE] = &&L_ld_tee,
        [IW__OP_LOAD8U_TEE] = &&L_ld8u_tee,
        [IW__OP_LOADL_TEE] = &&L_ldl_tee,
        [IW__OP_LOADL8U_TEE] = &&L_ldl8u_tee,
        [IW__OP_MOVE8] = &&L_move8,
    };
#pragma GCC diagnostic pop
#endif

    if (!f) {
        /* Resume: the suspended call is the outermost one (outer holds). */
        const iw__suspended *su = &s->susp;
        f = su->func;
        entry_sp = su->base;
        entry_depth = su->base_depth;
        pc = su->pc;
        fp = su->fp;
        sp = su->sp;
        cur = su->cur;
        callee = su->callee;
        s->depth = su->depth;
        s->susp.active = false;
        if (cur) {
            inst = cur->inst;
            ops = cur->code->ops;
            RELOAD_MEM();
        }
        if (callee)
            goto do_call;
        NEXT();
    }
    if (outer) {
        /* A new call from the host abandons a suspended one (whose slots
         * the arguments may already have overwritten). */
        drop_suspended(s);
        /* An interrupt requested while idle is honoured at the entry. */
        if (IW__FLAG_GET(&s->interrupt))
            tick_flush(s);
    } else if (s->host_depth > s->cfg.max_host_depth) {
        iw__store_trap(s, IW_TRAP_STACK_EXHAUSTED,
                       f->host ? -1 : (int64_t)f->index, NULL);
        return IW_TRAP;
    }
    entry_sp = s->sp;
    entry_depth = s->depth;
    /* The entry is a call from a pseudo-frame (pc, fp, cur all NULL). */
    sp = entry_sp + f->type.nparams;
    goto do_call;

#if IW_THREADED
    {
#else
dispatch:
    switch (*pc++) {
#endif
    /* ---- control ---------------------------------------------------- */
    CASE(0x00) TRAP(IW_TRAP_UNREACHABLE);
    CASE(0x01) NEXT(); /* nop (not emitted; harmless) */
    CASE(0x03)
        /* a resume re-executes this op */
        CHECKPOINT((pc--, callee = NULL));
        NEXT();
    CASE(0x04)
        sp--;
        if ((uint32_t)*sp)
            pc++;
        else
            pc = ops + pc[0];
        NEXT();
    CASE(0x05) pc = ops + pc[0]; NEXT();
    CASE(0x0C)
    do_br: {
        /* pc points at TARGET HEIGHT ARITY; the destination is never
         * above the source, so a forward copy is safe. */
        uint32_t t = pc[0], ar = pc[2], i;
        iw__slot *dst = fp + pc[1];
        if (ar) { /* 0 when the values are in place (validate.c) */
            const iw__slot *src = sp - ar;
            for (i = 0; i < ar; i++)
                dst[i] = src[i];
        }
        sp = dst + ar;
        pc = ops + (t & ~IW__BR_LOOP);
        if (t & IW__BR_LOOP) /* the loop head's checkpoint (wasm_int.h) */
            CHECKPOINT((pc--, callee = NULL));
        NEXT();
    }
    CASE(0x0D)
        sp--;
        if ((uint32_t)*sp)
            goto do_br;
        pc += 3;
        NEXT();
    CASE(0x0E) {
        uint32_t n = pc[0], i = (uint32_t)*--sp;
        if (i > n)
            i = n;
        pc += 1 + (size_t)3 * i;
        goto do_br;
    }
    CASE(0x0F) {
        uint32_t ar = pc[0], i;
        iw__slot *src = sp - ar;
        const iw__frame *fr;
        for (i = 0; i < ar; i++)
            fp[i] = src[i];
        sp = fp + ar;
        fr = &s->frames[--s->depth];
        if (!fr->ret_pc)
            goto done;
        pc = fr->ret_pc;
        fp = fr->fp;
        cur = fr->func;
        inst = cur->inst;
        ops = cur->code->ops;
        RELOAD_MEM();
        NEXT();
    }
    CASE(0x10)
        callee = inst->funcs[pc[0]];
        pc++;
        goto do_call;
    CASE(0x11) {
        uint32_t typeidx = pc[0], i = (uint32_t)*--sp;
        const iw_table *t = inst->tables[pc[1]];
        pc += 2;
        if (i >= t->size)
            TRAP(IW_TRAP_UNDEFINED_ELEMENT);
        if (!t->elems[i])
            TRAP(IW_TRAP_UNINIT_ELEMENT);
        callee = (iw_func *)(uintptr_t)t->elems[i];
        if (!iw__functype_eq(&callee->type, &inst->mod->types[typeidx]))
            TRAP(IW_TRAP_INDIRECT_MISMATCH);
        goto do_call;
    }
    do_call: {
        /* callee's arguments are the top nparams operands; pc is the
         * caller's continuation (NULL for the entry).  A resume re-executes
         * the checkpoint with the same callee. */
        const iw__code *code;
        iw__slot *nfp = sp - callee->type.nparams;
        iw__frame *fr;
        CHECKPOINT((void)0);
        if (s->depth >= s->cfg.max_call_depth)
            TRAP(IW_TRAP_STACK_EXHAUSTED);
        fr = &s->frames[s->depth];
        fr->ret_pc = pc;
        fr->fp = fp;
        fr->func = cur;
        if (callee->host) {
            s->depth++;
            st = call_host(s, callee, inst, nfp,
                           cur ? (int64_t)cur->index : -1);
            s->depth--;
            if (st != IW_OK)
                goto fail;
            sp = nfp + callee->type.nresults;
            if (!pc)
                goto done; /* the host called a host function */
            RELOAD_MEM();
            NEXT();
        }
        code = callee->code;
        if (!stack_room(s, nfp, code->max_height))
            TRAP(IW_TRAP_STACK_EXHAUSTED);
        s->depth++;
        fp = nfp;
        sp = fp + callee->type.nparams;
        if (code->nlocals) {
            /* Small counts two at a time, without a memset call. */
            iw__slot *end = sp + code->nlocals;
            if (code->nlocals <= 16) {
                if (code->nlocals & 1u)
                    *sp++ = 0;
                while (sp < end) {
                    sp[0] = 0;
                    sp[1] = 0;
                    sp += 2;
                }
            } else {
                memset(sp, 0, (size_t)code->nlocals * sizeof(iw__slot));
            }
            sp = end;
        }
        cur = callee;
        inst = callee->inst;
        ops = code->ops;
        pc = ops;
        RELOAD_MEM();
        NEXT();
    }

    /* ---- parametric and variables ------------------------------------- */
    CASE(0x1A) sp--; NEXT();
    CASE(0x1B) {
        uint32_t c = (uint32_t)sp[-1];
        sp -= 2;
        if (!c)
            sp[-1] = sp[0];
        NEXT();
    }
    CASE(0x20) *sp++ = fp[pc[0]]; pc++; NEXT();
    CASE(0x21) fp[pc[0]] = *--sp; pc++; NEXT();
    CASE(0x22) fp[pc[0]] = sp[-1]; pc++; NEXT();
    CASE(0x23) *sp++ = inst->globals[pc[0]]->val; pc++; NEXT();
    CASE(0x24) inst->globals[pc[0]]->val = *--sp; pc++; NEXT();
    CASE(0x25) {
        const iw_table *t = inst->tables[pc[0]];
        uint32_t i = (uint32_t)sp[-1];
        pc++;
        if (i >= t->size)
            TRAP(IW_TRAP_OOB_TABLE);
        sp[-1] = t->elems[i];
        NEXT();
    }
    CASE(0x26) {
        iw_table *t = inst->tables[pc[0]];
        uint32_t i = (uint32_t)sp[-2];
        pc++;
        if (i >= t->size)
            TRAP(IW_TRAP_OOB_TABLE);
        t->elems[i] = sp[-1];
        sp -= 2;
        NEXT();
    }

    /* ---- memory ------------------------------------------------------- */
    CASE(0x28) LOAD(4, ld32(p));
    CASE(0x29) LOAD(8, ld64(p));
    CASE(0x2A) LOAD(4, ld32(p));
    CASE(0x2B) LOAD(8, ld64(p));
    CASE(0x2C) LOAD(1, sx8_32(p[0]));
    CASE(0x2D) LOAD(1, p[0]);
    CASE(0x2E) LOAD(2, sx16_32(ld16(p)));
    CASE(0x2F) LOAD(2, ld16(p));
    CASE(0x30) LOAD(1, sx8_64(p[0]));
    CASE(0x31) LOAD(1, p[0]);
    CASE(0x32) LOAD(2, sx16_64(ld16(p)));
    CASE(0x33) LOAD(2, ld16(p));
    CASE(0x34) LOAD(4, sx32_64(ld32(p)));
    CASE(0x35) LOAD(4, ld32(p));
    CASE(0x36) STORE(4, st32(p, (uint32_t)v));
    CASE(0x37) STORE(8, st64(p, v));
    CASE(0x38) STORE(4, st32(p, (uint32_t)v));
    CASE(0x39) STORE(8, st64(p, v));
    CASE(0x3A) STORE(1, p[0] = (uint8_t)v);
    CASE(0x3B) STORE(2, st16(p, (uint16_t)v));
    CASE(0x3C) STORE(1, p[0] = (uint8_t)v);
    CASE(0x3D) STORE(2, st16(p, (uint16_t)v));
    CASE(0x3E) STORE(4, st32(p, (uint32_t)v));
    CASE(0x3F) *sp++ = msize >> 16; NEXT();
    CASE(0x40) {
        int64_t r = inst->mem0 ? iw__memory_grow(inst->mem0, (uint32_t)sp[-1])
                               : -1;
        sp[-1] = (uint32_t)r; /* -1 becomes 0xFFFFFFFF */
        RELOAD_MEM();
        NEXT();
    }

    /* ---- constants ---------------------------------------------------- */
    CASE(0x41) *sp++ = pc[0]; pc++; NEXT();
    CASE(0x42) *sp++ = pc[0] | (uint64_t)pc[1] << 32; pc += 2; NEXT();
    CASE(0x43) *sp++ = pc[0]; pc++; NEXT();
    CASE(0x44) *sp++ = pc[0] | (uint64_t)pc[1] << 32; pc += 2; NEXT();

    /* ---- i32 / i64 comparisons ---------------------------------------- */
    CASE(0x45) UN32(a == 0);
    CASE(0x46) BIN32(a == b);
    CASE(0x47) BIN32(a != b);
    CASE(0x48) BIN32(lt_s32(a, b));
    CASE(0x49) BIN32(a < b);
    CASE(0x4A) BIN32(lt_s32(b, a));
    CASE(0x4B) BIN32(a > b);
    CASE(0x4C) BIN32(!lt_s32(b, a));
    CASE(0x4D) BIN32(a <= b);
    CASE(0x4E) BIN32(!lt_s32(a, b));
    CASE(0x4F) BIN32(a >= b);
    CASE(0x50) { sp[-1] = sp[-1] == 0 ? 1u : 0u; NEXT(); }
    CASE(0x51) CMP64(a == b);
    CASE(0x52) CMP64(a != b);
    CASE(0x53) CMP64(lt_s64(a, b));
    CASE(0x54) CMP64(a < b);
    CASE(0x55) CMP64(lt_s64(b, a));
    CASE(0x56) CMP64(a > b);
    CASE(0x57) CMP64(!lt_s64(b, a));
    CASE(0x58) CMP64(a <= b);
    CASE(0x59) CMP64(!lt_s64(a, b));
    CASE(0x5A) CMP64(a >= b);

    /* ---- float comparisons -------------------------------------------- */
    CASE(0x5B) CMPF32(a == b);
    CASE(0x5C) CMPF32(a != b);
    CASE(0x5D) CMPF32(a < b);
    CASE(0x5E) CMPF32(a > b);
    CASE(0x5F) CMPF32(a <= b);
    CASE(0x60) CMPF32(a >= b);
    CASE(0x61) CMPF64(a == b);
    CASE(0x62) CMPF64(a != b);
    CASE(0x63) CMPF64(a < b);
    CASE(0x64) CMPF64(a > b);
    CASE(0x65) CMPF64(a <= b);
    CASE(0x66) CMPF64(a >= b);

    /* ---- i32 arithmetic ----------------------------------------------- */
    CASE(0x67) UN32(clz32(a));
    CASE(0x68) UN32(ctz32(a));
    CASE(0x69) UN32(popcnt32(a));
    CASE(0x6A) BIN32(a + b);
    CASE(0x6B) BIN32(a - b);
    CASE(0x6C) BIN32(a * b);
    CASE(0x6D) {
        uint32_t a = (uint32_t)sp[-2], b = (uint32_t)sp[-1];
        if (b == 0)
            TRAP(IW_TRAP_DIV_ZERO);
        if (a == 0x80000000u && b == 0xFFFFFFFFu)
            TRAP(IW_TRAP_INT_OVERFLOW);
        sp--;
        sp[-1] = div_s32(a, b);
        NEXT();
    }
    CASE(0x6E) {
        uint32_t a = (uint32_t)sp[-2], b = (uint32_t)sp[-1];
        if (b == 0)
            TRAP(IW_TRAP_DIV_ZERO);
        sp--;
        sp[-1] = a / b;
        NEXT();
    }
    CASE(0x6F) {
        uint32_t a = (uint32_t)sp[-2], b = (uint32_t)sp[-1];
        if (b == 0)
            TRAP(IW_TRAP_DIV_ZERO);
        sp--;
        sp[-1] = rem_s32(a, b);
        NEXT();
    }
    CASE(0x70) {
        uint32_t a = (uint32_t)sp[-2], b = (uint32_t)sp[-1];
        if (b == 0)
            TRAP(IW_TRAP_DIV_ZERO);
        sp--;
        sp[-1] = a % b;
        NEXT();
    }
    CASE(0x71) BIN32(a & b);
    CASE(0x72) BIN32(a | b);
    CASE(0x73) BIN32(a ^ b);
    CASE(0x74) BIN32(a << (b & 31u));
    CASE(0x75) BIN32(shr_s32(a, b));
    CASE(0x76) BIN32(a >> (b & 31u));
    CASE(0x77) BIN32(rotl32(a, b));
    CASE(0x78) BIN32(rotr32(a, b));

    /* ---- i64 arithmetic ----------------------------------------------- */
    CASE(0x79) UN64(clz64(a));
    CASE(0x7A) UN64(ctz64(a));
    CASE(0x7B) UN64(popcnt64(a));
    CASE(0x7C) BIN64(a + b);
    CASE(0x7D) BIN64(a - b);
    CASE(0x7E) BIN64(a * b);
    CASE(0x7F) {
        uint64_t a = sp[-2], b = sp[-1];
        if (b == 0)
            TRAP(IW_TRAP_DIV_ZERO);
        if (a == F64_SIGN && b == UINT64_MAX)
            TRAP(IW_TRAP_INT_OVERFLOW);
        sp--;
        sp[-1] = div_s64(a, b);
        NEXT();
    }
    CASE(0x80) {
        uint64_t a = sp[-2], b = sp[-1];
        if (b == 0)
            TRAP(IW_TRAP_DIV_ZERO);
        sp--;
        sp[-1] = a / b;
        NEXT();
    }
    CASE(0x81) {
        uint64_t a = sp[-2], b = sp[-1];
        if (b == 0)
            TRAP(IW_TRAP_DIV_ZERO);
        sp--;
        sp[-1] = rem_s64(a, b);
        NEXT();
    }
    CASE(0x82) {
        uint64_t a = sp[-2], b = sp[-1];
        if (b == 0)
            TRAP(IW_TRAP_DIV_ZERO);
        sp--;
        sp[-1] = a % b;
        NEXT();
    }
    CASE(0x83) BIN64(a & b);
    CASE(0x84) BIN64(a | b);
    CASE(0x85) BIN64(a ^ b);
    CASE(0x86) BIN64(a << (b & 63u));
    CASE(0x87) BIN64(shr_s64(a, b));
    CASE(0x88) BIN64(a >> (b & 63u));
    CASE(0x89) BIN64(rotl64(a, b));
    CASE(0x8A) BIN64(rotr64(a, b));

    /* ---- f32 arithmetic (abs/neg/copysign on bits: NaN payloads kept) -- */
    CASE(0x8B) { sp[-1] = (uint32_t)sp[-1] & ~F32_SIGN; NEXT(); }
    CASE(0x8C) { sp[-1] = (uint32_t)sp[-1] ^ F32_SIGN; NEXT(); }
    CASE(0x8D) ROUNDF32(ceilf);
    CASE(0x8E) ROUNDF32(floorf);
    CASE(0x8F) ROUNDF32(truncf);
    CASE(0x90) { sp[-1] = f32_nearest(sp[-1]); NEXT(); }
    CASE(0x91) ROUNDF32(sqrtf);
    CASE(0x92) BINF32(a + b);
    CASE(0x93) BINF32(a - b);
    CASE(0x94) BINF32(a * b);
    CASE(0x95) BINF32(a / b);
    CASE(0x96) { sp[-2] = f32_min(sp[-2], sp[-1]); sp--; NEXT(); }
    CASE(0x97) { sp[-2] = f32_max(sp[-2], sp[-1]); sp--; NEXT(); }
    CASE(0x98) {
        sp[-2] = ((uint32_t)sp[-2] & ~F32_SIGN) | ((uint32_t)sp[-1] & F32_SIGN);
        sp--;
        NEXT();
    }

    /* ---- f64 arithmetic ----------------------------------------------- */
    CASE(0x99) { sp[-1] &= ~F64_SIGN; NEXT(); }
    CASE(0x9A) { sp[-1] ^= F64_SIGN; NEXT(); }
    CASE(0x9B) ROUNDF64(ceil);
    CASE(0x9C) ROUNDF64(floor);
    CASE(0x9D) ROUNDF64(trunc);
    CASE(0x9E) { sp[-1] = f64_nearest(sp[-1]); NEXT(); }
    CASE(0x9F) ROUNDF64(sqrt);
    CASE(0xA0) BINF64(a + b);
    CASE(0xA1) BINF64(a - b);
    CASE(0xA2) BINF64(a * b);
    CASE(0xA3) BINF64(a / b);
    CASE(0xA4) { sp[-2] = f64_min(sp[-2], sp[-1]); sp--; NEXT(); }
    CASE(0xA5) { sp[-2] = f64_max(sp[-2], sp[-1]); sp--; NEXT(); }
    CASE(0xA6) {
        sp[-2] = (sp[-2] & ~F64_SIGN) | (sp[-1] & F64_SIGN);
        sp--;
        NEXT();
    }

    /* ---- conversions -------------------------------------------------- */
    CASE(0xA7) { sp[-1] = (uint32_t)sp[-1]; NEXT(); }
    CASE(0xA8) TRUNC(float, f32_of, F32_I32_LO, F32_I32_HI,
                     (uint32_t)(int32_t)x);
    CASE(0xA9) TRUNC(float, f32_of, -1.0f, F32_U32_HI, (uint32_t)x);
    CASE(0xAA) TRUNC(double, f64_of, F64_I32_LO, F64_I32_HI,
                     (uint32_t)(int32_t)x);
    CASE(0xAB) TRUNC(double, f64_of, -1.0, F64_U32_HI, (uint32_t)x);
    CASE(0xAC) { sp[-1] = sx32_64(sp[-1]); NEXT(); }
    CASE(0xAD) { sp[-1] = (uint32_t)sp[-1]; NEXT(); }
    CASE(0xAE) TRUNC(float, f32_of, F32_I64_LO, F32_I64_HI,
                     (uint64_t)(int64_t)x);
    CASE(0xAF) TRUNC(float, f32_of, -1.0f, F32_U64_HI, (uint64_t)x);
    CASE(0xB0) TRUNC(double, f64_of, F64_I64_LO, F64_I64_HI,
                     (uint64_t)(int64_t)x);
    CASE(0xB1) TRUNC(double, f64_of, -1.0, F64_U64_HI, (uint64_t)x);
    CASE(0xB2) { sp[-1] = slot_f32((float)s32((uint32_t)sp[-1])); NEXT(); }
    CASE(0xB3) { sp[-1] = slot_f32((float)(uint32_t)sp[-1]); NEXT(); }
    CASE(0xB4) { sp[-1] = slot_f32(i64_to_f32(sp[-1])); NEXT(); }
    CASE(0xB5) { sp[-1] = slot_f32(u64_to_f32(sp[-1])); NEXT(); }
    CASE(0xB6) { sp[-1] = slot_f32((float)f64_of(sp[-1])); NEXT(); }
    CASE(0xB7) { sp[-1] = slot_f64((double)s32((uint32_t)sp[-1])); NEXT(); }
    CASE(0xB8) { sp[-1] = slot_f64((double)(uint32_t)sp[-1]); NEXT(); }
    CASE(0xB9) { sp[-1] = slot_f64((double)s64(sp[-1])); NEXT(); }
    CASE(0xBA) { sp[-1] = slot_f64((double)sp[-1]); NEXT(); }
    CASE(0xBB) { sp[-1] = slot_f64((double)f32_of(sp[-1])); NEXT(); }
    CASE(0xBC) NEXT(); /* reinterpretations: the bits stay as they are */
    CASE(0xBD) NEXT();
    CASE(0xBE) NEXT();
    CASE(0xBF) NEXT();
    CASE(0xC0) UN32(sx8_32(a));
    CASE(0xC1) UN32(sx16_32(a));
    CASE(0xC2) UN64(sx8_64(a));
    CASE(0xC3) UN64(sx16_64(a));
    CASE(0xC4) UN64(sx32_64(a));

    /* ---- references --------------------------------------------------- */
    CASE(0xD0) *sp++ = 0; NEXT();
    CASE(0xD1) { sp[-1] = sp[-1] == 0 ? 1u : 0u; NEXT(); }
    CASE(0xD2) *sp++ = (uint64_t)(uintptr_t)inst->funcs[pc[0]]; pc++; NEXT();

    /* ---- saturating truncation (0xFC 0..7) ---------------------------- */
    CASE(0xE0) TRUNC_SAT(float, f32_of, F32_I32_LO, F32_I32_HI, 0x80000000u,
                         0x7FFFFFFFu, (uint32_t)(int32_t)x);
    CASE(0xE1) TRUNC_SAT(float, f32_of, -1.0f, F32_U32_HI, 0u, 0xFFFFFFFFu,
                         (uint32_t)x);
    CASE(0xE2) TRUNC_SAT(double, f64_of, F64_I32_LO, F64_I32_HI, 0x80000000u,
                         0x7FFFFFFFu, (uint32_t)(int32_t)x);
    CASE(0xE3) TRUNC_SAT(double, f64_of, -1.0, F64_U32_HI, 0u, 0xFFFFFFFFu,
                         (uint32_t)x);
    CASE(0xE4) TRUNC_SAT(float, f32_of, F32_I64_LO, F32_I64_HI, F64_SIGN,
                         F64_SIGN - 1u, (uint64_t)(int64_t)x);
    CASE(0xE5) TRUNC_SAT(float, f32_of, -1.0f, F32_U64_HI, 0u, UINT64_MAX,
                         (uint64_t)x);
    CASE(0xE6) TRUNC_SAT(double, f64_of, F64_I64_LO, F64_I64_HI, F64_SIGN,
                         F64_SIGN - 1u, (uint64_t)(int64_t)x);
    CASE(0xE7) TRUNC_SAT(double, f64_of, -1.0, F64_U64_HI, 0u, UINT64_MAX,
                         (uint64_t)x);

    /* ---- bulk memory and tables: [dst, src/value, n], checked before any
     * write; zero-length operations at exactly the end are allowed. ---- */
    CASE(0xE8) {
        uint32_t di = pc[0];
        uint32_t n = (uint32_t)sp[-1], src = (uint32_t)sp[-2],
                 dst = (uint32_t)sp[-3];
        const iw__data *d = &inst->mod->datas[di];
        uint64_t len = inst->data_dropped[di] ? 0 : d->len;
        pc++;
        sp -= 3;
        if ((uint64_t)src + n > len || (uint64_t)dst + n > msize)
            TRAP(IW_TRAP_OOB_MEMORY);
        BULK_FUEL(n >> 16);
        if (n)
            memcpy(mbase + dst, d->bytes + src, n);
        NEXT();
    }
    CASE(0xE9) inst->data_dropped[pc[0]] = 1; pc++; NEXT();
    CASE(0xEA) {
        uint32_t n = (uint32_t)sp[-1], src = (uint32_t)sp[-2],
                 dst = (uint32_t)sp[-3];
        sp -= 3;
        if ((uint64_t)src + n > msize || (uint64_t)dst + n > msize)
            TRAP(IW_TRAP_OOB_MEMORY);
        BULK_FUEL(n >> 16);
        if (n)
            memmove(mbase + dst, mbase + src, n);
        NEXT();
    }
    CASE(0xEB) {
        uint32_t n = (uint32_t)sp[-1], dst = (uint32_t)sp[-3];
        uint8_t val = (uint8_t)sp[-2];
        sp -= 3;
        if ((uint64_t)dst + n > msize)
            TRAP(IW_TRAP_OOB_MEMORY);
        BULK_FUEL(n >> 16);
        if (n)
            memset(mbase + dst, val, n);
        NEXT();
    }
    CASE(0xEC) {
        const iw__elemrt *e = &inst->elems[pc[0]];
        iw_table *t = inst->tables[pc[1]];
        uint32_t n = (uint32_t)sp[-1], src = (uint32_t)sp[-2],
                 dst = (uint32_t)sp[-3];
        pc += 2;
        sp -= 3;
        if ((uint64_t)src + n > e->count || (uint64_t)dst + n > t->size)
            TRAP(IW_TRAP_OOB_TABLE);
        BULK_FUEL(n >> 10);
        if (n)
            memcpy(t->elems + dst, e->items + src, (size_t)n * sizeof(iw__slot));
        NEXT();
    }
    CASE(0xED) inst->elems[pc[0]].count = 0; pc++; NEXT();
    CASE(0xEE) {
        iw_table *td = inst->tables[pc[0]];
        const iw_table *ts = inst->tables[pc[1]];
        uint32_t n = (uint32_t)sp[-1], src = (uint32_t)sp[-2],
                 dst = (uint32_t)sp[-3];
        pc += 2;
        sp -= 3;
        if ((uint64_t)src + n > ts->size || (uint64_t)dst + n > td->size)
            TRAP(IW_TRAP_OOB_TABLE);
        BULK_FUEL(n >> 10);
        if (n)
            memmove(td->elems + dst, ts->elems + src,
                    (size_t)n * sizeof(iw__slot));
        NEXT();
    }
    CASE(0xEF) {
        iw_table *t = inst->tables[pc[0]];
        int64_t r = iw__table_grow(t, (uint32_t)sp[-1], sp[-2]);
        pc++;
        sp--;
        sp[-1] = (uint32_t)r; /* -1 becomes 0xFFFFFFFF */
        NEXT();
    }
    CASE(0xF0) *sp++ = inst->tables[pc[0]]->size; pc++; NEXT();
    CASE(0xF1) {
        iw_table *t = inst->tables[pc[0]];
        uint32_t n = (uint32_t)sp[-1], i = (uint32_t)sp[-3], k;
        iw__slot val = sp[-2];
        pc++;
        sp -= 3;
        if ((uint64_t)i + n > t->size)
            TRAP(IW_TRAP_OOB_TABLE);
        BULK_FUEL(n >> 10);
        for (k = 0; k < n; k++)
            t->elems[i + k] = val;
        NEXT();
    }

    /* ---- superinstructions (see wasm_int.h) --------------------------- */
    IW__FUSE_ARITH(GEN_FUSED)
    IW__FUSE_CMP(GEN_FUSED)
    IW__FUSE_CMP(GEN_FUSED_BR)
    SCASE(br_eqz, IW__OP_BR_EQZ)
        sp--;
        if (!(uint32_t)*sp)
            goto do_br;
        pc += 3;
        NEXT();
    SCASE(const_set, IW__OP_CONST_SET) fp[pc[1]] = pc[0]; pc += 2; NEXT();
    SCASE(copy, IW__OP_COPY) fp[pc[1]] = fp[pc[0]]; pc += 2; NEXT();
    GEN_ADD_SET(set, IW__OP_ADD_SET, fp[x] = r)
    GEN_ADD_SET(tee, IW__OP_ADD_TEE, fp[x] = r; *sp++ = r)
    GEN_LOAD_L(0x28, 4, ld32(p))
    GEN_LOAD_L(0x29, 8, ld64(p))
    GEN_LOAD_L(0x2A, 4, ld32(p))
    GEN_LOAD_L(0x2B, 8, ld64(p))
    GEN_LOAD_L(0x2C, 1, sx8_32(p[0]))
    GEN_LOAD_L(0x2D, 1, p[0])
    GEN_LOAD_L(0x2E, 2, sx16_32(ld16(p)))
    GEN_LOAD_L(0x2F, 2, ld16(p))
    GEN_LOAD_L(0x30, 1, sx8_64(p[0]))
    GEN_LOAD_L(0x31, 1, p[0])
    GEN_LOAD_L(0x32, 2, sx16_64(ld16(p)))
    GEN_LOAD_L(0x33, 2, ld16(p))
    GEN_LOAD_L(0x34, 4, sx32_64(ld32(p)))
    GEN_LOAD_L(0x35, 4, ld32(p))
    IW__FUSE_ARITH64(GEN_FUSED64)
    IW__FUSE_CMP64(GEN_FUSED64)
    IW__FUSE_CMP64(GEN_FUSED64_BR)
    SCASE(br_eqz64, IW__OP_BR_EQZ64)
        sp--;
        if (!*sp)
            goto do_br;
        pc += 3;
        NEXT();
    SCASE(eqz_l, IW__OP_EQZ_L)
        *sp++ = (uint32_t)fp[pc[0]] == 0 ? 1u : 0u;
        pc++;
        NEXT();
    SCASE(br_z_l, IW__OP_BR_Z_L) {
        uint32_t v = (uint32_t)fp[pc[0]];
        pc++;
        if (!v)
            goto do_br;
        pc += 3;
        NEXT();
    }
    SCASE(br_nz_l, IW__OP_BR_NZ_L) {
        uint32_t v = (uint32_t)fp[pc[0]];
        pc++;
        if (v)
            goto do_br;
        pc += 3;
        NEXT();
    }
    GEN_LOAD_TEE(ld_tee, IW__OP_LOAD_TEE, sp[-1], 0, 2, 4, ld32(p), sp[-1])
    GEN_LOAD_TEE(ld8u_tee, IW__OP_LOAD8U_TEE, sp[-1], 0, 2, 1, p[0], sp[-1])
    GEN_LOAD_TEE(ldl_tee, IW__OP_LOADL_TEE, fp[pc[0]], 1, 3, 4, ld32(p),
                 *sp++)
    GEN_LOAD_TEE(ldl8u_tee, IW__OP_LOADL8U_TEE, fp[pc[0]], 1, 3, 1, p[0],
                 *sp++)
    SCASE(move8, IW__OP_MOVE8) {
        uint64_t src = (uint64_t)(uint32_t)sp[-1] + pc[0];
        uint64_t dst = (uint64_t)(uint32_t)sp[-2] + pc[1];
        pc += 2;
        if (src + 1 > msize || dst + 1 > msize)
            TRAP(IW_TRAP_OOB_MEMORY);
        mbase[dst] = mbase[src];
        sp -= 2;
        NEXT();
    }

    DEFAULT_CASE
        iw__store_trap(s, IW_TRAP_UNREACHABLE, cur->index,
                       "invalid internal opcode 0x%x", (unsigned)pc[-1]);
        st = IW_TRAP;
        goto fail;
    }

done:
    s->sp = entry_sp;
    s->depth = entry_depth;
    return IW_OK;

suspend:
    /* A fuel or interrupt trap at a checkpoint: keep everything in place
     * when this call can be resumed, otherwise unwind like any trap. */
    if (resumable && outer) {
        iw__suspended *su = &s->susp;
        su->active = true;
        su->func = f;
        su->base = entry_sp;
        su->base_depth = entry_depth;
        su->depth = s->depth;
        su->pc = pc;
        su->fp = fp;
        su->sp = sp;
        su->cur = cur;
        su->callee = callee;
        iw__store_trap(s, tc, cur ? (int64_t)cur->index
                                  : (callee->host ? -1 : (int64_t)callee->index),
                       NULL);
        /* Idle store, as after a return; the record keeps the rest. */
        s->sp = entry_sp;
        s->depth = entry_depth;
        return IW_TRAP;
    }
trap:
    /* Before the entry frame (cur == NULL) the trap is the callee's. */
    iw__store_trap(s, tc,
                   cur ? (int64_t)cur->index
                       : (callee->host ? -1 : (int64_t)callee->index),
                   NULL);
    st = IW_TRAP;
fail:
    s->sp = entry_sp;
    s->depth = entry_depth;
    return st;
}
#if IW_THREADED
#pragma GCC diagnostic pop
#endif

/* Runs f for instantiation (the start function): never suspends. */
iw_status iw__exec(iw_store *s, iw_func *f)
{
    if (!s->stack || !s->frames || !s->sp) {
        iw__store_trap(s, IW_TRAP_STACK_EXHAUSTED, -1, NULL);
        return IW_TRAP;
    }
    return run(s, f, false);
}

/* ------------------------------------------------------------------------ */
/* Public call API.                                                         */

/* Calls f from the embedder (or, reentrantly, from a host function):
 * checks the signature, places the arguments at s->sp, runs the
 * interpreter (which abandons a suspended call, and can suspend this one,
 * when outermost) and converts the results back with their types set. */
iw_status iw_call_func(iw_func *f, const iw_val *args, size_t nargs,
                       iw_val *results, size_t nresults)
{
    iw_store *s;
    const iw_functype *t;
    iw__slot *base;
    uint32_t i, need;
    iw_status st;

    if (!f || !f->store)
        return IW_ARG;
    s = f->store;
    t = &f->type;
    if (nargs != t->nparams) {
        iw__store_trap(s, IW_TRAP_NONE, -1, "expected %u arguments, got %zu",
                       (unsigned)t->nparams, nargs);
        return IW_ARG;
    }
    if (nresults != t->nresults) {
        iw__store_trap(s, IW_TRAP_NONE, -1, "expected %u results, got %zu",
                       (unsigned)t->nresults, nresults);
        return IW_ARG;
    }
    if ((nargs && !args) || (nresults && !results)) {
        iw__store_trap(s, IW_TRAP_NONE, -1, "NULL argument or result array");
        return IW_ARG;
    }
    for (i = 0; i < t->nparams; i++) {
        if (args[i].type != t->params[i]) {
            iw__store_trap(s, IW_TRAP_NONE, -1,
                           "argument %u: expected %s, got %s", (unsigned)i + 1,
                           iw_valtype_name(t->params[i]),
                           iw_valtype_name(args[i].type));
            return IW_ARG;
        }
    }
    /* A store from iw_store_new always has its stacks (s->sp included). */
    base = s->sp;
    need = t->nparams > t->nresults ? t->nparams : t->nresults;
    if (!stack_room(s, base, need)) {
        iw__store_trap(s, IW_TRAP_STACK_EXHAUSTED, -1, NULL);
        return IW_TRAP;
    }
    for (i = 0; i < t->nparams; i++)
        base[i] = val_to_slot(t->params[i], &args[i]);
    st = run(s, f, true);
    if (st == IW_OK)
        for (i = 0; i < t->nresults; i++)
            slot_to_val(t->results[i], base[i], &results[i]);
    return st;
}

iw_memory *iw_call_memory(iw_call *call)
{
    return call && call->inst ? call->inst->mem0 : NULL;
}

iw_instance *iw_call_instance(iw_call *call)
{
    return call ? call->inst : NULL;
}

iw_store *iw_call_store(iw_call *call)
{
    return call ? call->store : NULL;
}

/* Records a host trap (IW_TRAP_HOST) with msg; the interpreter fills in the
 * calling function's index.  Returns IW_TRAP for `return iw_call_trap(..)`. */
iw_status iw_call_trap(iw_call *call, const char *msg)
{
    if (call && call->store) {
        if (msg)
            iw__store_trap(call->store, IW_TRAP_HOST, -1, "%s", msg);
        else
            iw__store_trap(call->store, IW_TRAP_HOST, -1, NULL);
    }
    return IW_TRAP;
}

/* Records an exit request with its code; returns IW_EXIT. */
iw_status iw_call_exit(iw_call *call, int code)
{
    if (call && call->store) {
        iw__store_trap(call->store, IW_TRAP_EXIT, -1, NULL);
        call->store->exit_code = code;
    }
    return IW_EXIT;
}

/* Sets the fuel budget (negative: metering off).  Safe from a host
 * function: the running call sees the new budget at its next checkpoint. */
void iw_store_set_fuel(iw_store *s, int64_t fuel)
{
    if (!s)
        return;
    s->fuel_on = fuel >= 0;
    s->fuel = fuel >= 0 ? fuel : 0;
    s->tick = 0; /* the next checkpoint re-arms from the new budget */
}

/* Remaining fuel, exact at any time (also inside a host function). */
int64_t iw_store_get_fuel(const iw_store *s)
{
    return s && s->fuel_on ? s->fuel + s->tick : -1;
}

/* Sets the interrupt flag; the only store function safe from any thread. */
void iw_store_interrupt(iw_store *s)
{
    if (s)
        IW__FLAG_SET(&s->interrupt, 1);
}

void iw_store_clear_interrupt(iw_store *s)
{
    if (s)
        IW__FLAG_SET(&s->interrupt, 0);
}

int iw_store_can_resume(const iw_store *s)
{
    return s && s->susp.active ? 1 : 0;
}

/* Continues the suspended call where its checkpoint stopped it and returns
 * like iw_call_func: results converted with the called function's types;
 * IW_TRAP again (and suspended again) when it runs out of fuel or is
 * interrupted once more.  IW_ARG when nothing is suspended, a call is
 * running, or nresults/results do not fit the signature. */
iw_status iw_store_resume(iw_store *s, iw_val *results, size_t nresults)
{
    const iw_functype *t;
    iw__slot *base;
    iw_status st;
    uint32_t i;

    if (!s)
        return IW_ARG;
    if (!s->susp.active || s->host_depth != 0) {
        iw__store_trap(s, IW_TRAP_NONE, -1, "no suspended call to resume");
        return IW_ARG;
    }
    t = &s->susp.func->type;
    if (nresults != t->nresults) {
        iw__store_trap(s, IW_TRAP_NONE, -1, "expected %u results, got %zu",
                       (unsigned)t->nresults, nresults);
        return IW_ARG;
    }
    if (nresults && !results) {
        iw__store_trap(s, IW_TRAP_NONE, -1, "NULL result array");
        return IW_ARG;
    }
    base = s->susp.base;
    st = run(s, NULL, true);
    if (st == IW_OK)
        for (i = 0; i < t->nresults; i++)
            slot_to_val(t->results[i], base[i], &results[i]);
    return st;
}

/* Drops the suspended call (no-op when there is none). */
void iw_store_abandon(iw_store *s)
{
    if (s)
        drop_suspended(s);
}
