/*
 * validate.c - validates one function body with the WebAssembly 2.0 type
 * checking algorithm and, in the same single pass, translates it into the
 * internal code executed by exec.c (see "Internal code" in wasm_int.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "wasm_int.h"

/* Limits of this implementation. */
#define IW__MAX_LOCALS 50000u          /* params + declared locals */
#define IW__MAX_CODE_WORDS (64u << 20) /* translated words per function */
#define IW__MAX_OPERANDS (1u << 24)    /* operand stack depth per function */
/* Slots added to max_height as a safety margin for the interpreter. */
#define IW__HEIGHT_MARGIN 1u

#define T_UNKNOWN 0u /* the spec's Unknown (bottom) operand type */
#define NO_PATCH UINT32_MAX

enum { K_FUNC, K_BLOCK, K_LOOP, K_IF, K_ELSE };

/* One control frame of the validation algorithm, plus translation state. */
typedef struct vframe {
    uint8_t kind;          /* K_* */
    bool unreachable;      /* rest of the frame is dead (stack polymorphic) */
    bool live;             /* the frame was entered while emitting code */
    const uint8_t *params; /* start types */
    uint32_t nparams;
    const uint8_t *results; /* end types */
    uint32_t nresults;
    uint32_t height;   /* operand count at the base of the frame */
    uint32_t label_pc; /* loop: word index of its 0x03 */
    uint32_t patch;    /* chain of forward references to the frame end,
                          threaded through the placeholder words */
    uint32_t else_pos; /* if: index of the ELSE word, NO_PATCH if none */
} vframe;

/* State of one iw__translate_func call.  Every buffer is scratch owned by
 * the call and freed before it returns. */
typedef struct vctx {
    iw_module *m;
    iw__reader *r;
    uint32_t funcidx;      /* absolute function index (for messages) */
    const uint8_t *ip;     /* start of the current instruction */
    const iw_functype *ft; /* the function's type */

    uint8_t *locals;  /* types of params + locals */
    uint32_t nlocals; /* params + locals = base of the operand stack */

    uint8_t *vals; /* operand types */
    uint32_t nvals, capvals, maxvals;

    vframe *ctrls;
    uint32_t nctrls, capctrls;

    uint32_t *code; /* emitted words */
    uint32_t ncode, capcode;

    /* Peephole history: the last (up to 2) instructions emitted through
     * emit_op since the last branch target or control instruction, oldest
     * first; hist[i] = {start word, end word, opcode word}. */
    struct vhist {
        uint32_t pos, end, op;
    } hist[2];
    uint32_t nhist;
} vctx;

/* Value types pointed to by single-result block types. */
static const uint8_t single_types[] = {IW_I32, IW_I64,     IW_F32,
                                       IW_F64, IW_FUNCREF, IW_EXTERNREF};

#define TRY(expr)                                                              \
    do {                                                                       \
        iw_status try_s_ = (expr);                                             \
        if (try_s_ != IW_OK)                                                   \
            return try_s_;                                                     \
    } while (0)

static const char *tname(uint8_t t)
{
    switch (t) {
    case IW_I32:
        return "i32";
    case IW_I64:
        return "i64";
    case IW_F32:
        return "f32";
    case IW_F64:
        return "f64";
    case IW_FUNCREF:
        return "funcref";
    case IW_EXTERNREF:
        return "externref";
    case T_UNKNOWN:
        return "unknown";
    default:
        return "?";
    }
}

static bool is_valtype(uint8_t b)
{
    return b == IW_I32 || b == IW_I64 || b == IW_F32 || b == IW_F64 ||
           b == IW_FUNCREF || b == IW_EXTERNREF;
}

static bool is_num(uint8_t t)
{
    return t == IW_I32 || t == IW_I64 || t == IW_F32 || t == IW_F64 ||
           t == T_UNKNOWN;
}

static bool is_ref(uint8_t t)
{
    return t == IW_FUNCREF || t == IW_EXTERNREF || t == T_UNKNOWN;
}

static const uint8_t *single_type(uint8_t t)
{
    return memchr(single_types, t, sizeof single_types);
}

/* Writes "<formatted> (function N, offset 0x..)" into the reader's error
 * buffer, pointing at the start of the current instruction, and returns st. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 3, 4)))
#endif
static iw_status
fail(vctx *c, iw_status st, const char *fmt, ...)
{
    char buf[200];
    va_list ap;
    iw__reader at = *c->r;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (c->ip)
        at.p = c->ip;
    iw__errf(c->r->err, c->r->errlen, "%s (function %u, offset 0x%zx)", buf,
             c->funcidx, iw__reader_offset(&at));
    return st;
}

/* A reader function failed and wrote its message: add the function index
 * (unless already there) and report the body as malformed. */
static iw_status reader_fail(vctx *c)
{
    char tmp[256];

    if (c->r->err && c->r->errlen && !strstr(c->r->err, "(function ")) {
        snprintf(tmp, sizeof tmp, "%s", c->r->err);
        iw__errf(c->r->err, c->r->errlen, "%s (function %u)", tmp, c->funcidx);
    }
    return IW_MALFORMED;
}

#define RD(call)                                                               \
    do {                                                                       \
        if (!(call))                                                           \
            return reader_fail(c);                                             \
    } while (0)

/* ---- code emission ----------------------------------------------------- */

static vframe *top(vctx *c)
{
    return &c->ctrls[c->nctrls - 1];
}

/* True when instructions at the current position are emitted. */
static inline bool emitting(vctx *c)
{
    const vframe *f = top(c);
    return f->live && !f->unreachable;
}

/* Grows the code scratch buffer (the slow path of emit). */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static iw_status grow_code(vctx *c)
{
    uint32_t ncap = c->capcode ? c->capcode * 2 : 256;
    uint32_t *p;
    if (c->capcode >= IW__MAX_CODE_WORDS)
        return fail(c, IW_INVALID, "function too large: more than %u code words",
                    IW__MAX_CODE_WORDS);
    if (ncap > IW__MAX_CODE_WORDS)
        ncap = IW__MAX_CODE_WORDS;
    p = iw__realloc(c->code, (size_t)ncap * sizeof *p);
    if (!p)
        return IW_NOMEM;
    c->code = p;
    c->capcode = ncap;
    return IW_OK;
}

/* Appends one word, growing the scratch buffer. */
static inline iw_status emit(vctx *c, uint32_t w)
{
    if (c->ncode == c->capcode) {
        iw_status st = grow_code(c);
        if (st != IW_OK)
            return st;
    }
    c->code[c->ncode++] = w;
    return IW_OK;
}

/* ---- peephole fusion into superinstructions (see wasm_int.h) ----------- */

/* Forgets the history: the next instruction starts a new straight run (it
 * may be a branch target, or follows a control instruction). */
static void hist_clear(vctx *c)
{
    c->nhist = 0;
}

/* Drops the newest k history entries. */
static void hist_drop(vctx *c, uint32_t k)
{
    c->nhist = c->nhist > k ? c->nhist - k : 0;
}

/* Records an instruction occupying words [pos, c->ncode). */
static void hist_push(vctx *c, uint32_t pos, uint32_t op)
{
    if (c->nhist == 2) {
        c->hist[0] = c->hist[1];
        c->nhist = 1;
    }
    c->hist[c->nhist].pos = pos;
    c->hist[c->nhist].end = c->ncode;
    c->hist[c->nhist].op = op;
    c->nhist++;
}

/* The instruction `back` places before the end of the code (0 = the last
 * one), or NULL when it is not in the current straight run. */
static const struct vhist *hist_at(const vctx *c, uint32_t back)
{
    const struct vhist *h;
    uint32_t end = c->ncode;
    uint32_t i;
    for (i = 0; i <= back; i++) {
        if (c->nhist <= i)
            return NULL;
        h = &c->hist[c->nhist - 1 - i];
        if (h->end != end)
            return NULL; /* something else was emitted in between */
        end = h->pos;
    }
    return h;
}

/* Index K of a fusable i32 operator (IW__FUSE_ARITH/IW__FUSE_CMP), or -1. */
static int fuse_index(uint32_t op)
{
#define FUSE_K_CASE(K, W)                                                    \
    case W:                                                                  \
        return K;
    switch (op) {
    IW__FUSE_ARITH(FUSE_K_CASE)
    IW__FUSE_CMP(FUSE_K_CASE)
    default:
        return -1;
    }
#undef FUSE_K_CASE
}

/* Index K of a fusable i64 operator (IW__FUSE_ARITH64/IW__FUSE_CMP64), or
 * -1. */
static int fuse_index64(uint32_t op)
{
#define FUSE_K_CASE(K, W)                                                    \
    case W:                                                                  \
        return K;
    switch (op) {
    IW__FUSE_ARITH64(FUSE_K_CASE)
    IW__FUSE_CMP64(FUSE_K_CASE)
    default:
        return -1;
    }
#undef FUSE_K_CASE
}

/* Replaces the newest `k` history instructions, which start at word pos,
 * by the words w[0..n-1] (one instruction with opcode w[0]). */
static iw_status fuse_replace(vctx *c, uint32_t k, uint32_t pos,
                              const uint32_t *w, uint32_t n)
{
    uint32_t i;
    hist_drop(c, k);
    c->ncode = pos;
    for (i = 0; i < n; i++)
        TRY(emit(c, w[i]));
    hist_push(c, pos, w[0]);
    return IW_OK;
}

/* Tries to fuse instruction `op` (immediate a, if any) with the ones just
 * before it.  Sets *fused when it emitted the combined instruction instead
 * of op; otherwise emits nothing. */
static iw_status fuse(vctx *c, uint32_t op, uint32_t a, bool *fused)
{
    const struct vhist *l = hist_at(c, 0), *p = hist_at(c, 1);
    int k = fuse_index(op), k64 = fuse_index64(op);
    uint32_t w[4];

    *fused = false;
    if (!l)
        return IW_OK;
    if (k64 >= 0 && (l->op == 0x42 || l->op == 0x20)) {
        /* the i64 forms: a constant takes two words (LO HI) */
        bool cst = l->op == 0x42;
        uint32_t n = 0;
        *fused = true;
        if (p && p->op == 0x20) { /* local.get A; (const C | local.get B) */
            w[n++] = IW__OP_SUPER64(cst ? IW__F_LI : IW__F_LL, (uint32_t)k64);
            w[n++] = c->code[p->pos + 1];
        } else {
            w[n++] = IW__OP_SUPER64(cst ? IW__F_I : IW__F_L, (uint32_t)k64);
        }
        w[n++] = c->code[l->pos + 1];
        if (cst)
            w[n++] = c->code[l->pos + 2];
        if (p && p->op == 0x20)
            return fuse_replace(c, 2, p->pos, w, n);
        return fuse_replace(c, 1, l->pos, w, n);
    }
    if (op == 0x45 && l->op == 0x20) { /* local.get A; i32.eqz */
        w[0] = IW__OP_EQZ_L;
        w[1] = c->code[l->pos + 1];
        *fused = true;
        return fuse_replace(c, 1, l->pos, w, 2);
    }
    if (op == 0x22 && (l->op == 0x28 || l->op == 0x2D ||
                       l->op == IW__OP_LOAD_L(0x28) ||
                       l->op == IW__OP_LOAD_L(0x2D))) {
        /* an i32.load / i32.load8_u (plain or from local A); local.tee X */
        uint32_t n = l->end - l->pos, i;
        if (l->op == 0x28)
            w[0] = IW__OP_LOAD_TEE;
        else if (l->op == 0x2D)
            w[0] = IW__OP_LOAD8U_TEE;
        else if (l->op == IW__OP_LOAD_L(0x28))
            w[0] = IW__OP_LOADL_TEE;
        else
            w[0] = IW__OP_LOADL8U_TEE;
        for (i = 1; i < n; i++)
            w[i] = c->code[l->pos + i];
        w[n] = a;
        *fused = true;
        return fuse_replace(c, 1, l->pos, w, n + 1);
    }
    if (op == 0x3A && l->op == 0x2D) { /* i32.load8_u O1; i32.store8 O2 */
        w[0] = IW__OP_MOVE8;
        w[1] = c->code[l->pos + 1];
        w[2] = a;
        *fused = true;
        return fuse_replace(c, 1, l->pos, w, 3);
    }
    if (k >= 0 && (l->op == 0x41 || l->op == 0x20)) {
        bool cst = l->op == 0x41;
        uint32_t v = c->code[l->pos + 1];
        *fused = true;
        if (p && p->op == 0x20) { /* local.get A; (const C | local.get B) */
            w[0] = IW__OP_SUPER(cst ? IW__F_LI : IW__F_LL, (uint32_t)k);
            w[1] = c->code[p->pos + 1];
            w[2] = v;
            return fuse_replace(c, 2, p->pos, w, 3);
        }
        w[0] = IW__OP_SUPER(cst ? IW__F_I : IW__F_L, (uint32_t)k);
        w[1] = v;
        return fuse_replace(c, 1, l->pos, w, 2);
    }
    if (op == 0x21 && (l->op == 0x41 || l->op == 0x20)) {
        /* i32.const C / local.get A; local.set X */
        w[0] = l->op == 0x41 ? IW__OP_CONST_SET : IW__OP_COPY;
        w[1] = c->code[l->pos + 1];
        w[2] = a;
        *fused = true;
        return fuse_replace(c, 1, l->pos, w, 3);
    }
    if (op == 0x21 || op == 0x22) { /* i32.add (any form); local.set/tee */
        uint32_t form, n = l->end - l->pos, i;
        if (l->op == 0x6A)
            form = 0;
        else if (l->op == IW__OP_SUPER(IW__F_I, 0))
            form = 1;
        else if (l->op == IW__OP_SUPER(IW__F_L, 0))
            form = 2;
        else if (l->op == IW__OP_SUPER(IW__F_LI, 0))
            form = 3;
        else if (l->op == IW__OP_SUPER(IW__F_LL, 0))
            form = 4;
        else
            return IW_OK;
        w[0] = op == 0x21 ? IW__OP_ADD_SET(form) : IW__OP_ADD_TEE(form);
        for (i = 1; i < n; i++)
            w[i] = c->code[l->pos + i];
        w[n] = a;
        *fused = true;
        return fuse_replace(c, 1, l->pos, w, n + 1);
    }
    if (op >= 0x28 && op <= 0x35 && l->op == 0x20) { /* local.get A; load */
        w[0] = IW__OP_LOAD_L(op);
        w[1] = c->code[l->pos + 1];
        w[2] = a;
        *fused = true;
        return fuse_replace(c, 1, l->pos, w, 3);
    }
    return IW_OK;
}

/* Before a br_if is emitted: turns an i32 compare (any operand form) or an
 * i32.eqz just before it into the compare-and-branch opcode; the caller
 * then emits TARGET HEIGHT ARITY.  Returns true when it did (the br_if
 * opcode word must not be emitted). */
static bool fuse_br_if(vctx *c)
{
    const struct vhist *l = hist_at(c, 0);
    uint32_t op;
    int k;

    if (!l)
        return false;
    op = l->op;
    if (op == 0x45) {
        c->code[l->pos] = IW__OP_BR_EQZ;
        return true;
    }
    if (op == 0x50) {
        c->code[l->pos] = IW__OP_BR_EQZ64;
        return true;
    }
    if (op == 0x20 || op == IW__OP_EQZ_L) { /* local.get A / EQZ_L A */
        c->code[l->pos] = op == 0x20 ? IW__OP_BR_NZ_L : IW__OP_BR_Z_L;
        return true;
    }
    k = fuse_index64(op);
    if (k >= 11) {
        c->code[l->pos] = IW__OP_SUPER64(IW__F_BR, (uint32_t)k);
        return true;
    }
    if (op >= IW__OP_SUPER64(IW__F_I, 0) && op < IW__OP_SUPER64(IW__F_BR, 0) &&
        (op - IW__OP_SUPER64(0u, 0u)) % 32u >= 11u) {
        c->code[l->pos] = op + (IW__F_BR_I - IW__F_I) * 32u;
        return true;
    }
    k = fuse_index(op);
    if (k >= 0 && k >= 11) {
        c->code[l->pos] = IW__OP_SUPER(IW__F_BR, (uint32_t)k);
        return true;
    }
    if (op >= IW__OP_SUPER(IW__F_I, 0) && op < IW__OP_SUPER(IW__F_BR, 0) &&
        (op - 0x100u) % 32u >= 11u && (op - 0x100u) % 32u <= 20u) {
        /* I, L, LI, LL forms map to BR_I, BR_L, BR_LI, BR_LL */
        c->code[l->pos] = op + (IW__F_BR_I - IW__F_I) * 32u;
        return true;
    }
    return false;
}

/* Emits op (and up to two immediates) when the current code is live,
 * fusing it with the instructions before it where possible. */
static iw_status emit_op(vctx *c, uint32_t op, int nimm, uint32_t a, uint32_t b)
{
    uint32_t pos;
    bool fused;

    if (!emitting(c))
        return IW_OK;
    TRY(fuse(c, op, a, &fused));
    if (fused)
        return IW_OK;
    pos = c->ncode;
    TRY(emit(c, op));
    if (nimm > 0)
        TRY(emit(c, a));
    if (nimm > 1)
        TRY(emit(c, b));
    hist_push(c, pos, op);
    return IW_OK;
}

/* Emits the TARGET HEIGHT ARITY triple of a branch to frame f: loops have
 * a known target, other labels are linked into f's patch chain.  vbase is
 * the operand count below the branch values: when they already sit at the
 * label's height (the common case) the triple says "no move" as HEIGHT =
 * height + arity, ARITY = 0, which has the same effect at run time. */
static iw_status emit_target(vctx *c, vframe *f, uint32_t vbase)
{
    uint32_t target, arity = f->kind == K_LOOP ? f->nparams : f->nresults;

    if (f->kind == K_LOOP) {
        /* skip the loop op: the branch makes its checkpoint */
        target = (f->label_pc + 1u) | IW__BR_LOOP;
    } else {
        target = f->patch;
        f->patch = c->ncode;
    }
    TRY(emit(c, target));
    if (vbase == f->height) {
        TRY(emit(c, c->nlocals + f->height + arity));
        return emit(c, 0);
    }
    TRY(emit(c, c->nlocals + f->height));
    return emit(c, arity);
}

/* Points every placeholder of a patch chain at target. */
static void resolve(vctx *c, uint32_t chain, uint32_t target)
{
    while (chain != NO_PATCH) {
        uint32_t next = c->code[chain];
        c->code[chain] = target;
        chain = next;
    }
}

/* ---- operand and control stacks ---------------------------------------- */

/* Grows the operand-type stack (the slow path of push). */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((noinline))
#endif
static iw_status grow_vals(vctx *c)
{
    uint32_t ncap = c->capvals ? c->capvals * 2 : 64;
    uint8_t *p;
    if (c->capvals >= IW__MAX_OPERANDS)
        return fail(c, IW_INVALID,
                    "function too large: operand stack deeper than %u",
                    IW__MAX_OPERANDS);
    if (ncap > IW__MAX_OPERANDS)
        ncap = IW__MAX_OPERANDS;
    p = iw__realloc(c->vals, ncap);
    if (!p)
        return IW_NOMEM;
    c->vals = p;
    c->capvals = ncap;
    return IW_OK;
}

static inline iw_status push(vctx *c, uint8_t t)
{
    if (c->nvals == c->capvals) {
        iw_status st = grow_vals(c);
        if (st != IW_OK)
            return st;
    }
    c->vals[c->nvals++] = t;
    if (c->nvals > c->maxvals)
        c->maxvals = c->nvals;
    return IW_OK;
}

static iw_status push_n(vctx *c, const uint8_t *ts, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        TRY(push(c, ts[i]));
    return IW_OK;
}

/* Pops an operand expected to be of type `expect` (T_UNKNOWN: any type).
 * *out (may be NULL) receives the actual type, T_UNKNOWN when popped from
 * the polymorphic stack of unreachable code. */
static iw_status pop(vctx *c, uint8_t expect, uint8_t *out)
{
    const vframe *f = top(c);
    uint8_t actual;

    if (c->nvals == f->height) {
        if (!f->unreachable) {
            if (expect == T_UNKNOWN)
                return fail(c, IW_INVALID,
                            "type mismatch: expected a value, found nothing");
            return fail(c, IW_INVALID,
                        "type mismatch: expected %s, found nothing",
                        tname(expect));
        }
        actual = T_UNKNOWN;
    } else {
        actual = c->vals[--c->nvals];
        if (actual != expect && actual != T_UNKNOWN && expect != T_UNKNOWN)
            return fail(c, IW_INVALID, "type mismatch: expected %s, found %s",
                        tname(expect), tname(actual));
    }
    if (out)
        *out = actual;
    return IW_OK;
}

static iw_status pop_n(vctx *c, const uint8_t *ts, uint32_t n)
{
    for (uint32_t i = n; i-- > 0;)
        TRY(pop(c, ts[i], NULL));
    return IW_OK;
}

/* Pushes a control frame whose params are already validated and popped. */
static iw_status push_ctrl(vctx *c, uint8_t kind, const uint8_t *params,
                           uint32_t np, const uint8_t *results, uint32_t nr,
                           bool live)
{
    vframe *f;

    if (c->nctrls == c->capctrls) {
        uint32_t ncap = c->capctrls ? c->capctrls * 2 : 16;
        vframe *p;
        if (c->capctrls > UINT32_MAX / 4)
            return fail(c, IW_INVALID, "function too large: nesting");
        p = iw__realloc(c->ctrls, (size_t)ncap * sizeof *p);
        if (!p)
            return IW_NOMEM;
        c->ctrls = p;
        c->capctrls = ncap;
    }
    f = &c->ctrls[c->nctrls++];
    f->kind = kind;
    f->unreachable = false;
    f->live = live;
    f->params = params;
    f->nparams = np;
    f->results = results;
    f->nresults = nr;
    f->height = c->nvals;
    f->label_pc = NO_PATCH;
    f->patch = NO_PATCH;
    f->else_pos = NO_PATCH;
    return push_n(c, params, np);
}

/* Pops the frame's results and checks that nothing else is left. */
static iw_status check_frame_end(vctx *c)
{
    const vframe *f = top(c);

    TRY(pop_n(c, f->results, f->nresults));
    if (c->nvals != f->height)
        return fail(c, IW_INVALID,
                    "type mismatch: %u extra value(s) at the end of a block "
                    "expecting %u result(s)",
                    c->nvals - f->height, f->nresults);
    return IW_OK;
}

/* Marks the rest of the current frame as dead code. */
static void set_unreachable(vctx *c)
{
    vframe *f = top(c);
    c->nvals = f->height;
    f->unreachable = true;
}

static const uint8_t *label_types(const vframe *f, uint32_t *n)
{
    if (f->kind == K_LOOP) {
        *n = f->nparams;
        return f->params;
    }
    *n = f->nresults;
    return f->results;
}

/* Maps a branch depth to its frame ("unknown label" when out of range). */
static iw_status label(vctx *c, uint32_t depth, vframe **out)
{
    *out = NULL;
    if (depth >= c->nctrls)
        return fail(c, IW_INVALID,
                    "unknown label %u: only %u enclosing "
                    "block(s)",
                    depth, c->nctrls);
    *out = &c->ctrls[c->nctrls - 1 - depth];
    return IW_OK;
}

/* ---- immediates -------------------------------------------------------- */

/* Reads a block type into start/end type vectors. */
static iw_status read_blocktype(vctx *c, const uint8_t **params, uint32_t *np,
                                const uint8_t **results, uint32_t *nr)
{
    iw__reader *r = c->r;
    int64_t x;

    *params = NULL;
    *np = 0;
    *results = NULL;
    *nr = 0;
    if (r->p < r->end) {
        uint8_t b = *r->p;
        if (b == 0x40) {
            r->p++;
            return IW_OK;
        }
        if (is_valtype(b)) {
            r->p++;
            *results = single_type(b);
            *nr = 1;
            return IW_OK;
        }
    }
    RD(iw__read_s33(r, &x));
    if (x < 0)
        return fail(c, IW_MALFORMED, "malformed block type: 0x%02x",
                    (unsigned)(x & 0x7F));
    if (x >= (int64_t)c->m->ntypes)
        return fail(c, IW_INVALID,
                    "unknown type %lld: the module has %u "
                    "type(s)",
                    (long long)x, c->m->ntypes);
    *params = c->m->types[x].params;
    *np = c->m->types[x].nparams;
    *results = c->m->types[x].results;
    *nr = c->m->types[x].nresults;
    return IW_OK;
}

/* Reads a 0x00 reserved byte (memory index placeholder). */
static iw_status read_zero(vctx *c)
{
    uint8_t b;
    RD(iw__read_u8(c->r, &b));
    if (b != 0)
        return fail(c, IW_MALFORMED, "zero byte expected, found 0x%02x", b);
    return IW_OK;
}

static iw_status need_memory(vctx *c)
{
    if (c->m->nmems == 0)
        return fail(c, IW_INVALID,
                    "unknown memory 0: the module has no "
                    "memory");
    return IW_OK;
}

static iw_status need_table(vctx *c, uint32_t x)
{
    if (x >= c->m->ntables)
        return fail(c, IW_INVALID,
                    "unknown table %u: the module has %u "
                    "table(s)",
                    x, c->m->ntables);
    return IW_OK;
}

static iw_status need_elem(vctx *c, uint32_t x)
{
    if (x >= c->m->nelems)
        return fail(c, IW_INVALID,
                    "unknown elem segment %u: the module has "
                    "%u",
                    x, c->m->nelems);
    return IW_OK;
}

static iw_status need_data(vctx *c, uint32_t x)
{
    if (!c->m->has_datacount)
        return fail(c, IW_MALFORMED,
                    "data count section required for "
                    "memory.init and data.drop");
    if (x >= c->m->datacount)
        return fail(c, IW_INVALID,
                    "unknown data segment %u: the data count "
                    "is %u",
                    x, c->m->datacount);
    return IW_OK;
}

/* Reads a memarg, checks memory 0 and the alignment against the natural
 * alignment (log2 bytes), and emits op OFFSET. */
static iw_status memarg(vctx *c, uint8_t op, uint32_t natural)
{
    uint32_t align, offset;
    RD(iw__read_u32(c->r, &align));
    RD(iw__read_u32(c->r, &offset));
    TRY(need_memory(c));
    if (align > natural)
        return fail(c, IW_INVALID,
                    "alignment must not be larger than "
                    "natural: 2^%u > %u bytes",
                    align, 1u << natural);
    return emit_op(c, op, 1, offset, 0);
}

/* ---- locals ------------------------------------------------------------ */

/* Reads the local declarations: first pass to count and check, second to
 * fill c->locals (params first). */
static iw_status read_locals(vctx *c)
{
    iw__reader *r = c->r;
    const uint8_t *start = r->p;
    uint64_t total = c->ft->nparams;
    uint32_t n, cnt, pos;
    uint8_t t;

    RD(iw__read_u32(r, &n));
    for (uint32_t i = 0; i <= n; i++) {
        if (total > IW__MAX_LOCALS)
            return fail(c, IW_MALFORMED,
                        "too many locals: more than %u "
                        "params and locals",
                        IW__MAX_LOCALS);
        if (i == n)
            break;
        RD(iw__read_u32(r, &cnt));
        total += cnt;
        c->ip = r->p;
        RD(iw__read_u8(r, &t));
        if (!is_valtype(t))
            return fail(c, IW_MALFORMED,
                        "malformed value type 0x%02x in "
                        "local declarations",
                        t);
        c->ip = NULL;
    }
    c->locals = iw__malloc((size_t)total + 1);
    if (!c->locals)
        return IW_NOMEM;
    c->nlocals = (uint32_t)total;
    if (c->ft->nparams)
        memcpy(c->locals, c->ft->params, c->ft->nparams);
    pos = c->ft->nparams;
    r->p = start;
    RD(iw__read_u32(r, &n));
    for (uint32_t i = 0; i < n; i++) {
        RD(iw__read_u32(r, &cnt));
        RD(iw__read_u8(r, &t));
        memset(c->locals + pos, t, cnt);
        pos += cnt;
    }
    return IW_OK;
}

/* ---- instruction tables ------------------------------------------------ */

/* Numeric instructions 0x45..0xC4 by range: operand types a (and b for
 * binary ops; 0 for unary) and result type. */
static const struct numrange {
    uint8_t lo, hi, a, b, res;
} numeric[] = {
    {0x45, 0x45, IW_I32, 0, IW_I32},      {0x46, 0x4F, IW_I32, IW_I32, IW_I32},
    {0x50, 0x50, IW_I64, 0, IW_I32},      {0x51, 0x5A, IW_I64, IW_I64, IW_I32},
    {0x5B, 0x60, IW_F32, IW_F32, IW_I32}, {0x61, 0x66, IW_F64, IW_F64, IW_I32},
    {0x67, 0x69, IW_I32, 0, IW_I32},      {0x6A, 0x78, IW_I32, IW_I32, IW_I32},
    {0x79, 0x7B, IW_I64, 0, IW_I64},      {0x7C, 0x8A, IW_I64, IW_I64, IW_I64},
    {0x8B, 0x91, IW_F32, 0, IW_F32},      {0x92, 0x98, IW_F32, IW_F32, IW_F32},
    {0x99, 0x9F, IW_F64, 0, IW_F64},      {0xA0, 0xA6, IW_F64, IW_F64, IW_F64},
    {0xA7, 0xA7, IW_I64, 0, IW_I32},      {0xA8, 0xA9, IW_F32, 0, IW_I32},
    {0xAA, 0xAB, IW_F64, 0, IW_I32},      {0xAC, 0xAD, IW_I32, 0, IW_I64},
    {0xAE, 0xAF, IW_F32, 0, IW_I64},      {0xB0, 0xB1, IW_F64, 0, IW_I64},
    {0xB2, 0xB3, IW_I32, 0, IW_F32},      {0xB4, 0xB5, IW_I64, 0, IW_F32},
    {0xB6, 0xB6, IW_F64, 0, IW_F32},      {0xB7, 0xB8, IW_I32, 0, IW_F64},
    {0xB9, 0xBA, IW_I64, 0, IW_F64},      {0xBB, 0xBB, IW_F32, 0, IW_F64},
    {0xBC, 0xBC, IW_F32, 0, IW_I32},      {0xBD, 0xBD, IW_F64, 0, IW_I64},
    {0xBE, 0xBE, IW_I32, 0, IW_F32},      {0xBF, 0xBF, IW_I64, 0, IW_F64},
    {0xC0, 0xC1, IW_I32, 0, IW_I32},      {0xC2, 0xC4, IW_I64, 0, IW_I64},
};

/* Loads 0x28..0x35 and stores 0x36..0x3E: natural alignment and type. */
static const uint8_t load_align[14] = {2, 3, 2, 3, 0, 0, 1,
                                       1, 0, 0, 1, 1, 2, 2};
static const uint8_t load_type[14] = {IW_I32, IW_I64, IW_F32, IW_F64, IW_I32,
                                      IW_I32, IW_I32, IW_I32, IW_I64, IW_I64,
                                      IW_I64, IW_I64, IW_I64, IW_I64};
static const uint8_t store_align[9] = {2, 3, 2, 3, 0, 1, 0, 1, 2};
static const uint8_t store_type[9] = {IW_I32, IW_I64, IW_F32, IW_F64, IW_I32,
                                      IW_I32, IW_I64, IW_I64, IW_I64};

/* trunc_sat FC 0..7: operand and result types. */
static const uint8_t sat_in[8] = {IW_F32, IW_F32, IW_F64, IW_F64,
                                  IW_F32, IW_F32, IW_F64, IW_F64};
static const uint8_t sat_out[8] = {IW_I32, IW_I32, IW_I32, IW_I32,
                                   IW_I64, IW_I64, IW_I64, IW_I64};

/* ---- instructions ------------------------------------------------------ */

static iw_status op_numeric(vctx *c, uint8_t op)
{
    for (size_t i = 0; i < sizeof numeric / sizeof numeric[0]; i++) {
        const struct numrange *n = &numeric[i];
        if (op < n->lo || op > n->hi)
            continue;
        if (n->b)
            TRY(pop(c, n->b, NULL));
        TRY(pop(c, n->a, NULL));
        TRY(push(c, n->res));
        return emit_op(c, op, 0, 0, 0);
    }
    return fail(c, IW_MALFORMED, "illegal opcode 0x%02x", op);
}

/* br_table: reads the labels twice (the default label is checked first). */
static iw_status op_br_table(vctx *c)
{
    iw__reader *r = c->r;
    const uint8_t *labels;
    uint32_t n, depth, arity, dn;
    const uint8_t *dtypes;
    vframe *f;
    bool live = emitting(c);

    RD(iw__read_u32(r, &n));
    if ((size_t)(r->end - r->p) < (size_t)n + 1) /* >= 1 byte per label */
        return fail(c, IW_MALFORMED,
                    "unexpected end: br_table with %u "
                    "labels",
                    n);
    labels = r->p;
    for (uint32_t i = 0; i < n; i++)
        RD(iw__read_u32(r, &depth));
    RD(iw__read_u32(r, &depth));
    TRY(pop(c, IW_I32, NULL));
    TRY(label(c, depth, &f));
    dtypes = label_types(f, &dn);
    arity = dn;
    if (live) {
        TRY(emit(c, 0x0E));
        TRY(emit(c, n));
    }
    {
        const uint8_t *end_of_table = r->p;
        r->p = labels;
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *ts;
            uint32_t tn;
            vframe *g;
            RD(iw__read_u32(r, &depth));
            TRY(label(c, depth, &g));
            ts = label_types(g, &tn);
            if (tn != arity)
                return fail(c, IW_INVALID,
                            "type mismatch: br_table label %u "
                            "has arity %u, default label has %u",
                            depth, tn, arity);
            /* push_vals(pop_vals(label types)): popping leaves the words
             * in place, so restoring the count re-pushes the actual types.
             * Values that came from the polymorphic stack of unreachable
             * code need not be re-pushed: the stack is still polymorphic
             * underneath. */
            {
                uint32_t base = c->nvals;
                TRY(pop_n(c, ts, tn));
                c->nvals = base;
            }
            if (live)
                TRY(emit_target(c, g, c->nvals - tn));
        }
        r->p = end_of_table;
    }
    TRY(pop_n(c, dtypes, dn));
    if (live)
        TRY(emit_target(c, f, c->nvals));
    set_unreachable(c);
    return IW_OK;
}

/* The 0xFC-prefixed instructions. */
static iw_status op_fc(vctx *c)
{
    iw__reader *r = c->r;
    uint32_t sub, x, y;

    RD(iw__read_u32(r, &sub));
    if (sub <= 7) {
        TRY(pop(c, sat_in[sub], NULL));
        TRY(push(c, sat_out[sub]));
        return emit_op(c, IW__OP_FC(sub), 0, 0, 0);
    }
    switch (sub) {
    case 8: /* memory.init dataidx 0x00 */
        RD(iw__read_u32(r, &x));
        TRY(read_zero(c));
        TRY(need_memory(c));
        TRY(need_data(c, x));
        TRY(pop(c, IW_I32, NULL));
        TRY(pop(c, IW_I32, NULL));
        TRY(pop(c, IW_I32, NULL));
        return emit_op(c, IW__OP_FC(sub), 1, x, 0);
    case 9: /* data.drop dataidx */
        RD(iw__read_u32(r, &x));
        TRY(need_data(c, x));
        return emit_op(c, IW__OP_FC(sub), 1, x, 0);
    case 10: /* memory.copy 0x00 0x00 */
    case 11: /* memory.fill 0x00 */
        TRY(read_zero(c));
        if (sub == 10)
            TRY(read_zero(c));
        TRY(need_memory(c));
        TRY(pop(c, IW_I32, NULL));
        TRY(pop(c, IW_I32, NULL));
        TRY(pop(c, IW_I32, NULL));
        return emit_op(c, IW__OP_FC(sub), 0, 0, 0);
    case 12: /* table.init elemidx tableidx */
        RD(iw__read_u32(r, &x));
        RD(iw__read_u32(r, &y));
        TRY(need_table(c, y));
        TRY(need_elem(c, x));
        if (c->m->elems[x].elemtype != c->m->tables[y].elemtype)
            return fail(c, IW_INVALID,
                        "type mismatch: table.init of a %s "
                        "segment into a %s table",
                        tname(c->m->elems[x].elemtype),
                        tname(c->m->tables[y].elemtype));
        TRY(pop(c, IW_I32, NULL));
        TRY(pop(c, IW_I32, NULL));
        TRY(pop(c, IW_I32, NULL));
        return emit_op(c, IW__OP_FC(sub), 2, x, y);
    case 13: /* elem.drop elemidx */
        RD(iw__read_u32(r, &x));
        TRY(need_elem(c, x));
        return emit_op(c, IW__OP_FC(sub), 1, x, 0);
    case 14: /* table.copy dst src */
        RD(iw__read_u32(r, &x));
        RD(iw__read_u32(r, &y));
        TRY(need_table(c, x));
        TRY(need_table(c, y));
        if (c->m->tables[x].elemtype != c->m->tables[y].elemtype)
            return fail(c, IW_INVALID,
                        "type mismatch: table.copy from a %s "
                        "table to a %s table",
                        tname(c->m->tables[y].elemtype),
                        tname(c->m->tables[x].elemtype));
        TRY(pop(c, IW_I32, NULL));
        TRY(pop(c, IW_I32, NULL));
        TRY(pop(c, IW_I32, NULL));
        return emit_op(c, IW__OP_FC(sub), 2, x, y);
    case 15: /* table.grow: [t i32] -> [i32] */
        RD(iw__read_u32(r, &x));
        TRY(need_table(c, x));
        TRY(pop(c, IW_I32, NULL));
        TRY(pop(c, c->m->tables[x].elemtype, NULL));
        TRY(push(c, IW_I32));
        return emit_op(c, IW__OP_FC(sub), 1, x, 0);
    case 16: /* table.size */
        RD(iw__read_u32(r, &x));
        TRY(need_table(c, x));
        TRY(push(c, IW_I32));
        return emit_op(c, IW__OP_FC(sub), 1, x, 0);
    case 17: /* table.fill: [i32 t i32] -> [] */
        RD(iw__read_u32(r, &x));
        TRY(need_table(c, x));
        TRY(pop(c, IW_I32, NULL));
        TRY(pop(c, c->m->tables[x].elemtype, NULL));
        TRY(pop(c, IW_I32, NULL));
        return emit_op(c, IW__OP_FC(sub), 1, x, 0);
    default:
        return fail(c, IW_MALFORMED, "illegal opcode 0xfc %u", sub);
    }
}

/* Validates and translates one instruction (opcode already read).  Sets
 * *done when the function's final `end` was processed. */
static iw_status instr(vctx *c, uint8_t op, bool *done)
{
    iw__reader *r = c->r;
    iw_module *m = c->m;
    uint32_t x, y;
    vframe *f;

    switch (op) {
    case 0x00: /* unreachable */
        TRY(emit_op(c, 0x00, 0, 0, 0));
        set_unreachable(c);
        return IW_OK;
    case 0x01: /* nop */
        return IW_OK;
    case 0x02:   /* block */
    case 0x03:   /* loop */
    case 0x04: { /* if */
        const uint8_t *ps, *rs;
        uint32_t np, nr;
        bool live = emitting(c);
        uint32_t pc = c->ncode;
        TRY(read_blocktype(c, &ps, &np, &rs, &nr));
        if (op == 0x04)
            TRY(pop(c, IW_I32, NULL));
        TRY(pop_n(c, ps, np));
        if (live && op != 0x02) {
            TRY(emit(c, op));
            if (op == 0x04)
                TRY(emit(c, NO_PATCH)); /* ELSE, patched later */
        }
        TRY(push_ctrl(c,
                      op == 0x02   ? K_BLOCK
                      : op == 0x03 ? K_LOOP
                                   : K_IF,
                      ps, np, rs, nr, live));
        f = top(c);
        if (op == 0x03)
            f->label_pc = pc;
        if (op == 0x04 && live)
            f->else_pos = pc + 1;
        return IW_OK;
    }
    case 0x05: /* else */
        f = top(c);
        if (f->kind != K_IF)
            return fail(c, IW_MALFORMED,
                        "illegal opcode 0x05: else without "
                        "matching if");
        TRY(check_frame_end(c));
        if (emitting(c)) {
            TRY(emit(c, 0x05));
            TRY(emit(c, f->patch));
            f->patch = c->ncode - 1;
        }
        if (f->live) {
            c->code[f->else_pos] = c->ncode;
            f->else_pos = NO_PATCH;
        }
        f->kind = K_ELSE;
        f->unreachable = false;
        return push_n(c, f->params, f->nparams);
    case 0x0B: { /* end */
        vframe fr;
        TRY(check_frame_end(c));
        fr = *top(c);
        if (fr.kind == K_IF) {
            /* no else: the implicit else arm passes the params through */
            if (fr.nparams != fr.nresults ||
                (fr.nparams && memcmp(fr.params, fr.results, fr.nparams)))
                return fail(c, IW_INVALID,
                            "type mismatch: if without else "
                            "must have equal param and result types");
        }
        if (fr.kind == K_FUNC) {
            uint32_t pc = c->ncode;
            TRY(emit(c, 0x0F));
            TRY(emit(c, fr.nresults));
            resolve(c, fr.patch, pc);
            c->nctrls--;
            if (r->p != r->end)
                return fail(c, IW_MALFORMED,
                            "section size mismatch: END "
                            "opcode expected at the end of the body, %zu "
                            "byte(s) remain",
                            (size_t)(r->end - r->p));
            *done = true;
            return IW_OK;
        }
        if (fr.live) {
            if (fr.else_pos != NO_PATCH)
                c->code[fr.else_pos] = c->ncode;
            resolve(c, fr.patch, c->ncode);
        }
        c->nctrls--;
        return push_n(c, fr.results, fr.nresults);
    }
    case 0x0C: /* br l */
    case 0x0D: /* br_if l */ {
        const uint8_t *ts;
        uint32_t tn;
        RD(iw__read_u32(r, &x));
        TRY(label(c, x, &f));
        if (op == 0x0D)
            TRY(pop(c, IW_I32, NULL));
        ts = label_types(f, &tn);
        TRY(pop_n(c, ts, tn));
        if (emitting(c)) {
            if (op == 0x0C && f->kind == K_FUNC) {
                TRY(emit(c, 0x0F));
                TRY(emit(c, tn));
            } else {
                if (op == 0x0C || !fuse_br_if(c))
                    TRY(emit(c, op));
                TRY(emit_target(c, f, c->nvals));
            }
        }
        if (op == 0x0C) {
            set_unreachable(c);
            return IW_OK;
        }
        return push_n(c, ts, tn);
    }
    case 0x0E:
        return op_br_table(c);
    case 0x0F: /* return */
        TRY(pop_n(c, c->ft->results, c->ft->nresults));
        TRY(emit_op(c, 0x0F, 1, c->ft->nresults, 0));
        set_unreachable(c);
        return IW_OK;
    case 0x10: { /* call */
        const iw_functype *t;
        RD(iw__read_u32(r, &x));
        if (x >= m->nfuncs)
            return fail(c, IW_INVALID,
                        "unknown function %u: the module has "
                        "%u function(s)",
                        x, m->nfuncs);
        t = &m->types[m->func_types[x]];
        TRY(pop_n(c, t->params, t->nparams));
        TRY(push_n(c, t->results, t->nresults));
        return emit_op(c, 0x10, 1, x, 0);
    }
    case 0x11: { /* call_indirect typeidx tableidx */
        const iw_functype *t;
        RD(iw__read_u32(r, &x));
        RD(iw__read_u32(r, &y));
        TRY(need_table(c, y));
        if (m->tables[y].elemtype != IW_FUNCREF)
            return fail(c, IW_INVALID,
                        "type mismatch: call_indirect through "
                        "a %s table",
                        tname(m->tables[y].elemtype));
        if (x >= m->ntypes)
            return fail(c, IW_INVALID,
                        "unknown type %u: the module has %u "
                        "type(s)",
                        x, m->ntypes);
        t = &m->types[x];
        TRY(pop(c, IW_I32, NULL));
        TRY(pop_n(c, t->params, t->nparams));
        TRY(push_n(c, t->results, t->nresults));
        return emit_op(c, 0x11, 2, x, y);
    }
    case 0x1A: /* drop */
        TRY(pop(c, T_UNKNOWN, NULL));
        return emit_op(c, 0x1A, 0, 0, 0);
    case 0x1B: { /* select */
        uint8_t t1, t2;
        TRY(pop(c, IW_I32, NULL));
        TRY(pop(c, T_UNKNOWN, &t1));
        TRY(pop(c, T_UNKNOWN, &t2));
        if (!is_num(t1) || !is_num(t2))
            return fail(c, IW_INVALID,
                        "type mismatch: untyped select needs "
                        "numeric operands, found %s and %s",
                        tname(t2), tname(t1));
        if (t1 != t2 && t1 != T_UNKNOWN && t2 != T_UNKNOWN)
            return fail(c, IW_INVALID,
                        "type mismatch: select operands %s "
                        "and %s differ",
                        tname(t2), tname(t1));
        TRY(push(c, t1 == T_UNKNOWN ? t2 : t1));
        return emit_op(c, 0x1B, 0, 0, 0);
    }
    case 0x1C: { /* select t* */
        uint8_t t;
        RD(iw__read_u32(r, &x));
        if (x != 1)
            return fail(c, IW_INVALID,
                        "invalid result arity: typed select "
                        "with %u types",
                        x);
        RD(iw__read_u8(r, &t));
        if (!is_valtype(t))
            return fail(c, IW_MALFORMED, "malformed value type 0x%02x", t);
        TRY(pop(c, IW_I32, NULL));
        TRY(pop(c, t, NULL));
        TRY(pop(c, t, NULL));
        TRY(push(c, t));
        return emit_op(c, 0x1B, 0, 0, 0);
    }
    case 0x20: /* local.get */
    case 0x21: /* local.set */
    case 0x22: /* local.tee */
        RD(iw__read_u32(r, &x));
        if (x >= c->nlocals)
            return fail(c, IW_INVALID,
                        "unknown local %u: the function has "
                        "%u local(s)",
                        x, c->nlocals);
        if (op != 0x20)
            TRY(pop(c, c->locals[x], NULL));
        if (op != 0x21)
            TRY(push(c, c->locals[x]));
        return emit_op(c, op, 1, x, 0);
    case 0x23: /* global.get */
    case 0x24: /* global.set */
        RD(iw__read_u32(r, &x));
        if (x >= m->nglobals)
            return fail(c, IW_INVALID,
                        "unknown global %u: the module has %u "
                        "global(s)",
                        x, m->nglobals);
        if (op == 0x23) {
            TRY(push(c, m->globals[x].type));
        } else {
            if (!m->globals[x].mut)
                return fail(c, IW_INVALID,
                            "global is immutable: global.set "
                            "of global %u",
                            x);
            TRY(pop(c, m->globals[x].type, NULL));
        }
        return emit_op(c, op, 1, x, 0);
    case 0x25: /* table.get */
    case 0x26: /* table.set */
        RD(iw__read_u32(r, &x));
        TRY(need_table(c, x));
        if (op == 0x25) {
            TRY(pop(c, IW_I32, NULL));
            TRY(push(c, m->tables[x].elemtype));
        } else {
            TRY(pop(c, m->tables[x].elemtype, NULL));
            TRY(pop(c, IW_I32, NULL));
        }
        return emit_op(c, op, 1, x, 0);
    case 0x3F: /* memory.size */
    case 0x40: /* memory.grow */
        TRY(read_zero(c));
        TRY(need_memory(c));
        if (op == 0x40)
            TRY(pop(c, IW_I32, NULL));
        TRY(push(c, IW_I32));
        return emit_op(c, op, 0, 0, 0);
    case 0x41: { /* i32.const */
        int32_t v;
        RD(iw__read_s32(r, &v));
        TRY(push(c, IW_I32));
        return emit_op(c, op, 1, (uint32_t)v, 0);
    }
    case 0x42: { /* i64.const */
        int64_t v;
        RD(iw__read_s64(r, &v));
        TRY(push(c, IW_I64));
        return emit_op(c, op, 2, (uint32_t)(uint64_t)v,
                       (uint32_t)((uint64_t)v >> 32));
    }
    case 0x43: { /* f32.const */
        uint32_t v;
        RD(iw__read_f32(r, &v));
        TRY(push(c, IW_F32));
        return emit_op(c, op, 1, v, 0);
    }
    case 0x44: { /* f64.const */
        uint64_t v;
        RD(iw__read_f64(r, &v));
        TRY(push(c, IW_F64));
        return emit_op(c, op, 2, (uint32_t)v, (uint32_t)(v >> 32));
    }
    case 0xD0: { /* ref.null t */
        uint8_t t;
        RD(iw__read_u8(r, &t));
        if (t != IW_FUNCREF && t != IW_EXTERNREF)
            return fail(c, IW_MALFORMED, "malformed reference type 0x%02x", t);
        TRY(push(c, t));
        return emit_op(c, 0xD0, 0, 0, 0);
    }
    case 0xD1: { /* ref.is_null */
        uint8_t t;
        TRY(pop(c, T_UNKNOWN, &t));
        if (!is_ref(t))
            return fail(c, IW_INVALID,
                        "type mismatch: ref.is_null expects a "
                        "reference, found %s",
                        tname(t));
        TRY(push(c, IW_I32));
        return emit_op(c, 0xD1, 0, 0, 0);
    }
    case 0xD2: /* ref.func */
        RD(iw__read_u32(r, &x));
        if (x >= m->nfuncs)
            return fail(c, IW_INVALID,
                        "unknown function %u: the module has "
                        "%u function(s)",
                        x, m->nfuncs);
        if (!m->func_declared || !m->func_declared[x])
            return fail(c, IW_INVALID,
                        "undeclared function reference: "
                        "function %u is not declared in an element segment, "
                        "export or global",
                        x);
        TRY(push(c, IW_FUNCREF));
        return emit_op(c, 0xD2, 1, x, 0);
    case 0xFC:
        return op_fc(c);
    default:
        break;
    }
    if (op >= 0x28 && op <= 0x35) {
        TRY(memarg(c, op, load_align[op - 0x28]));
        TRY(pop(c, IW_I32, NULL));
        return push(c, load_type[op - 0x28]);
    }
    if (op >= 0x36 && op <= 0x3E) {
        TRY(memarg(c, op, store_align[op - 0x36]));
        TRY(pop(c, store_type[op - 0x36], NULL));
        return pop(c, IW_I32, NULL);
    }
    if (op >= 0x45 && op <= 0xC4)
        return op_numeric(c, op);
    return fail(c, IW_MALFORMED, "illegal opcode 0x%02x", op);
}

/* Decode-only scan of the rest of a body, used after a validation error:
 * like the reference decoder, which decodes a whole body before validating
 * it, a malformed body is reported as malformed even when a type error comes
 * earlier.  Starts at the instruction c->ip with `depth` open frames.
 * Returns IW_OK when the rest is well-formed (message untouched), otherwise
 * IW_MALFORMED with its message. */
static iw_status scan_rest(vctx *c, uint32_t depth)
{
    iw__reader *r = c->r;
    uint32_t x, n;
    uint8_t op, b;
    int32_t i32;
    int64_t i64;
    uint64_t bits;

    r->p = c->ip;
    for (;;) {
        c->ip = r->p;
        RD(iw__read_u8(r, &op));
        switch (op) {
        case 0x02:
        case 0x03:
        case 0x04:
            if (r->p < r->end && (r->p[0] == 0x40 || is_valtype(r->p[0]))) {
                r->p++;
            } else {
                RD(iw__read_s33(r, &i64));
                if (i64 < 0)
                    return fail(c, IW_MALFORMED, "malformed block type");
            }
            depth++;
            break;
        case 0x0B:
            if (--depth == 0) {
                if (r->p != r->end)
                    return fail(c, IW_MALFORMED,
                                "section size mismatch: END "
                                "opcode expected at the end of the body");
                return IW_OK;
            }
            break;
        case 0x00:
        case 0x01:
        case 0x05:
        case 0x0F:
        case 0x1A:
        case 0x1B:
        case 0xD1:
            break;
        case 0x0E:
            RD(iw__read_u32(r, &n));
            for (uint64_t k = 0; k <= n; k++)
                RD(iw__read_u32(r, &x));
            break;
        case 0x11:
            RD(iw__read_u32(r, &x));
            RD(iw__read_u32(r, &x));
            break;
        case 0x1C:
            RD(iw__read_u32(r, &n));
            for (uint32_t k = 0; k < n; k++) {
                RD(iw__read_u8(r, &b));
                if (!is_valtype(b))
                    return fail(c, IW_MALFORMED, "malformed value type");
            }
            break;
        case 0x0C:
        case 0x0D:
        case 0x10:
        case 0x20:
        case 0x21:
        case 0x22:
        case 0x23:
        case 0x24:
        case 0x25:
        case 0x26:
        case 0xD2:
            RD(iw__read_u32(r, &x));
            break;
        case 0x3F:
        case 0x40:
            TRY(read_zero(c));
            break;
        case 0x41:
            RD(iw__read_s32(r, &i32));
            break;
        case 0x42:
            RD(iw__read_s64(r, &i64));
            break;
        case 0x43:
            RD(iw__read_f32(r, &x));
            break;
        case 0x44:
            RD(iw__read_f64(r, &bits));
            break;
        case 0xD0:
            RD(iw__read_u8(r, &b));
            if (b != IW_FUNCREF && b != IW_EXTERNREF)
                return fail(c, IW_MALFORMED, "malformed reference type");
            break;
        case 0xFC:
            RD(iw__read_u32(r, &x));
            if (x == 8 || x == 9) {
                RD(iw__read_u32(r, &n));
                if (!c->m->has_datacount)
                    return fail(c, IW_MALFORMED,
                                "data count section "
                                "required");
            }
            if (x == 8 || x == 10 || x == 11)
                TRY(read_zero(c));
            if (x == 10)
                TRY(read_zero(c));
            if (x == 12 || x == 14)
                RD(iw__read_u32(r, &n));
            if (x >= 12 && x <= 17)
                RD(iw__read_u32(r, &n));
            if (x > 17)
                return fail(c, IW_MALFORMED, "illegal opcode 0xfc %u", x);
            break;
        default:
            if (op >= 0x28 && op <= 0x3E) {
                RD(iw__read_u32(r, &x));
                RD(iw__read_u32(r, &x));
            } else if (op < 0x45 || op > 0xC4) {
                return fail(c, IW_MALFORMED, "illegal opcode 0x%02x", op);
            }
            break;
        }
    }
}

/* Validates and translates the body of defined function defidx; see
 * wasm_int.h.  On success m->codes[defidx] holds the code (in the module
 * arena); on failure it is left untouched.  All scratch memory is freed. */
iw_status iw__translate_func(iw_module *m, uint32_t defidx, iw__reader *r)
{
    vctx c;
    iw_status st;
    bool done = false;
    size_t body_offset = iw__reader_offset(r);
    uint32_t *ops;
    iw__code *code;

    memset(&c, 0, sizeof c);
    c.m = m;
    c.r = r;
    c.funcidx = m->nimported_funcs + defidx;
    c.ft = &m->types[m->func_types[c.funcidx]];

    st = read_locals(&c);
    if (st != IW_OK)
        goto cleanup;
    st = push_ctrl(&c, K_FUNC, NULL, 0, c.ft->results, c.ft->nresults, true);
    if (st != IW_OK)
        goto cleanup;
    while (!done) {
        uint8_t op;
        const uint8_t *ip = r->p;
        uint32_t depth;
        c.ip = ip;
        if (!iw__read_u8(r, &op)) {
            st = reader_fail(&c);
            goto cleanup;
        }
        depth = c.nctrls;
        st = instr(&c, op, &done);
        /* control instructions and labels end a straight run */
        if (op <= 0x11)
            hist_clear(&c);
        if (st == IW_INVALID) {
            /* a malformed rest of the body takes precedence; keep the
             * validation message otherwise */
            char saved[256];
            snprintf(saved, sizeof saved, "%s", r->err ? r->err : "");
            c.ip = ip;
            if (scan_rest(&c, depth) == IW_MALFORMED) {
                st = IW_MALFORMED;
            } else if (r->err && r->errlen) {
                iw__errf(r->err, r->errlen, "%s", saved);
            }
        }
        if (st != IW_OK)
            goto cleanup;
    }
    ops = iw__arena_array(&m->arena, c.ncode, sizeof *ops);
    if (!ops) {
        st = IW_NOMEM;
        goto cleanup;
    }
    memcpy(ops, c.code, (size_t)c.ncode * sizeof *ops);
    code = &m->codes[defidx];
    code->ops = ops;
    code->nops = c.ncode;
    code->nlocals = c.nlocals - c.ft->nparams;
    code->max_height = c.nlocals + c.maxvals + IW__HEIGHT_MARGIN;
    code->body_offset = (uint32_t)body_offset;
    st = IW_OK;
cleanup:
    if (st == IW_NOMEM)
        iw__errf(r->err, r->errlen, "out of memory translating function %u",
                 c.funcidx);
    iw__free(c.locals);
    iw__free(c.vals);
    iw__free(c.ctrls);
    iw__free(c.code);
    return st;
}
