/*
 * instance.c - stores, runtime objects (functions, memories, tables, globals)
 * and WebAssembly 2.0 instantiation: import matching, building the instance,
 * element/data segment initialisation and the start function.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "wasm_int.h"

#define PAGE_SIZE ((uint64_t)65536)
#define MAX_PAGES ((uint32_t)65536)

/* ------------------------------------------------------------------------ */
/* Values and slots.                                                        */

static bool valtype_ok(uint8_t t)
{
    return t == IW_I32 || t == IW_I64 || t == IW_F32 || t == IW_F64 ||
           t == IW_FUNCREF || t == IW_EXTERNREF;
}

static bool reftype_ok(uint8_t t)
{
    return t == IW_FUNCREF || t == IW_EXTERNREF;
}

/* Converts a typed value into its slot form (see wasm_int.h). */
static iw__slot val_to_slot(iw_val v)
{
    switch (v.type) {
    case IW_I32:
        return (iw__slot)(uint32_t)v.of.i32;
    case IW_I64:
        return (iw__slot)v.of.i64;
    case IW_F32:
        return (iw__slot)v.of.f32;
    case IW_F64:
        return (iw__slot)v.of.f64;
    default:
        return (iw__slot)(uintptr_t)v.of.ref;
    }
}

static iw_val slot_to_val(uint8_t type, iw__slot s)
{
    iw_val v;
    memset(&v, 0, sizeof v);
    v.type = type;
    switch (type) {
    case IW_I32:
        v.of.i32 = (int32_t)(uint32_t)s;
        break;
    case IW_I64:
        v.of.i64 = (int64_t)s;
        break;
    case IW_F32:
        v.of.f32 = (uint32_t)s;
        break;
    case IW_F64:
        v.of.f64 = s;
        break;
    default:
        v.of.ref = (void *)(uintptr_t)s;
        break;
    }
    return v;
}

/* A funcref may only name a function of the same store (NULL is fine). */
static bool funcref_in_store(const iw_store *s, uint8_t type, void *ref)
{
    return type != IW_FUNCREF || ref == NULL ||
           ((const iw_func *)ref)->store == s;
}

bool iw__functype_eq(const iw_functype *a, const iw_functype *b)
{
    if (a == b)
        return true;
    if (!a || !b || a->nparams != b->nparams || a->nresults != b->nresults)
        return false;
    if (a->nparams && memcmp(a->params, b->params, a->nparams) != 0)
        return false;
    if (a->nresults && memcmp(a->results, b->results, a->nresults) != 0)
        return false;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Stores.                                                                  */

void iw_config_default(iw_config *cfg)
{
    if (!cfg)
        return;
    cfg->max_memory_pages = 65536;
    cfg->max_table_elems = 10000000;
    cfg->stack_slots = 256u * 1024u;
    cfg->max_call_depth = 10000;
    cfg->max_host_depth = 64;
}

static int mul_fits(size_t a, size_t b)
{
    return a <= SIZE_MAX / b;
}

/* The sizes of a store's value stack and frames (iw__zalloc blocks; at
 * least one of each). */
static size_t stack_bytes(const iw_store *s)
{
    return (s->cfg.stack_slots ? s->cfg.stack_slots : 1) * sizeof(iw__slot);
}

static size_t frames_bytes(const iw_store *s)
{
    return (s->cfg.max_call_depth ? s->cfg.max_call_depth : 1) *
           sizeof(iw__frame);
}

/* Creates a store with a copy of cfg (defaults when NULL): a value stack of
 * cfg.stack_slots slots and cfg.max_call_depth frames (at least one of each
 * is allocated).  Returns NULL when out of memory. */
iw_store *iw_store_new(const iw_config *cfg)
{
    iw_store *s = iw__calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (cfg)
        s->cfg = *cfg;
    else
        iw_config_default(&s->cfg);
    if (!mul_fits(s->cfg.stack_slots, sizeof(iw__slot)) ||
        !mul_fits(s->cfg.max_call_depth, sizeof(iw__frame)))
        goto fail; /* 32-bit hosts */
    s->stack = iw__zalloc(stack_bytes(s));
    if (!s->stack)
        goto fail;
    s->frames = iw__zalloc(frames_bytes(s));
    if (!s->frames)
        goto fail;
    s->objs = NULL;
    s->sp = s->stack;
    s->depth = 0;
    s->host_depth = 0;
    s->tick = 0;
    s->fuel_on = false;
    s->fuel = 0;
    IW__FLAG_INIT(&s->interrupt);
    memset(&s->susp, 0, sizeof s->susp);
    s->trap = IW_TRAP_NONE;
    s->trap_func = -1;
    s->exit_code = 0;
    s->errmsg[0] = '\0';
    return s;
fail:
    iw__zfree(s->stack, stack_bytes(s));
    iw__free(s);
    return NULL;
}

/* Destroys every object created in the store, then the store itself. */
void iw_store_free(iw_store *s)
{
    iw__obj *o, *next;
    if (!s)
        return;
    for (o = s->objs; o; o = next) {
        next = o->next;
        if (o->destroy)
            o->destroy(o);
    }
    iw__zfree(s->stack, stack_bytes(s));
    iw__zfree(s->frames, frames_bytes(s));
    iw__free(s);
}

iw_trap iw_store_trap(const iw_store *s)
{
    return s ? s->trap : IW_TRAP_NONE;
}

const char *iw_store_errmsg(const iw_store *s)
{
    return s ? s->errmsg : "";
}

int64_t iw_store_trap_func(const iw_store *s)
{
    return s ? s->trap_func : -1;
}

int iw_store_exit_code(const iw_store *s)
{
    return s ? s->exit_code : 0;
}

/* Records trap t (IW_TRAP_NONE for a plain error) raised in function `func`
 * (-1 when none) with a formatted message, or the trap's standard message
 * when fmt is NULL. */
void iw__store_trap(iw_store *s, iw_trap t, int64_t func, const char *fmt, ...)
{
    va_list ap;
    if (!s)
        return;
    s->trap = t;
    s->trap_func = func;
    if (!fmt) {
        snprintf(s->errmsg, sizeof s->errmsg, "%s", iw_trap_msg(t));
        return;
    }
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
}

void iw__store_adopt(iw_store *s, iw__obj *o, void (*destroy)(iw__obj *))
{
    if (!s || !o)
        return;
    o->destroy = destroy;
    o->next = s->objs;
    s->objs = o;
}

/* ------------------------------------------------------------------------ */
/* Memories.                                                                */

static void memory_destroy(iw__obj *o)
{
    iw_memory *m = (iw_memory *)o;
    iw__zfree(m->data, (size_t)m->size);
    iw__free(m);
}

/* New zeroed memory of lim.min pages, adopted by s.  NULL when the limits
 * are invalid (min > max, more than 65536 pages), min exceeds the store cap,
 * or out of memory.  The data buffer is never NULL (1 byte when empty). */
iw_memory *iw_memory_new(iw_store *s, iw_limits lim)
{
    iw_memory *m;
    uint64_t bytes;

    if (!s || lim.min > MAX_PAGES || lim.min > s->cfg.max_memory_pages)
        return NULL;
    if (lim.has_max && (lim.max < lim.min || lim.max > MAX_PAGES))
        return NULL;
    bytes = (uint64_t)lim.min * PAGE_SIZE;
    if (bytes > SIZE_MAX)
        return NULL;
    m = iw__calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->data = iw__zalloc((size_t)bytes);
    if (!m->data) {
        iw__free(m);
        return NULL;
    }
    m->size = bytes;
    m->pages = lim.min;
    m->lim = lim;
    m->lim.has_max = lim.has_max ? 1 : 0;
    m->store = s;
    iw__store_adopt(s, &m->obj, memory_destroy);
    return m;
}

uint64_t iw_memory_size(const iw_memory *m)
{
    return m ? m->size : 0;
}

uint8_t *iw_memory_data(iw_memory *m)
{
    return m ? m->data : NULL;
}

/* True when [off, off+n) lies inside the memory (no overflow). */
static bool mem_range_ok(const iw_memory *m, uint64_t off, size_t n)
{
    return off <= m->size && (uint64_t)n <= m->size - off;
}

iw_status iw_memory_read(const iw_memory *m, uint64_t off, void *dst, size_t n)
{
    if (!m || (n && !dst) || !mem_range_ok(m, off, n))
        return IW_ARG;
    if (n)
        memcpy(dst, m->data + off, n);
    return IW_OK;
}

iw_status iw_memory_write(iw_memory *m, uint64_t off, const void *src,
                          size_t n)
{
    if (!m || (n && !src) || !mem_range_ok(m, off, n))
        return IW_ARG;
    if (n)
        memcpy(m->data + off, src, n);
    return IW_OK;
}

/* Grows m by delta pages (new bytes zeroed).  Returns the old page count, or
 * -1 when the result would exceed the declared max, 65536 pages or the store
 * cap, or when reallocation fails (m is unchanged then). */
int64_t iw__memory_grow(iw_memory *m, uint32_t delta)
{
    uint64_t newpages, newbytes;
    uint8_t *p;
    uint32_t old;

    if (!m)
        return -1;
    old = m->pages;
    newpages = (uint64_t)old + delta;
    if (newpages > MAX_PAGES || (m->lim.has_max && newpages > m->lim.max) ||
        (m->store && newpages > m->store->cfg.max_memory_pages))
        return -1;
    if (delta == 0)
        return old;
    newbytes = newpages * PAGE_SIZE;
    if (newbytes > SIZE_MAX)
        return -1;
    p = iw__zrealloc(m->data, (size_t)m->size, (size_t)newbytes);
    if (!p)
        return -1;
    m->data = p;
    m->size = newbytes;
    m->pages = (uint32_t)newpages;
    return old;
}

int64_t iw_memory_grow(iw_memory *m, uint32_t delta)
{
    return iw__memory_grow(m, delta);
}

/* ------------------------------------------------------------------------ */
/* Tables.                                                                  */

static void table_destroy(iw__obj *o)
{
    iw_table *t = (iw_table *)o;
    iw__free(t->elems);
    iw__free(t);
}

/* New table of lim.min entries all set to init (a funcref must belong to s),
 * adopted by s.  NULL on a bad element type or limits, when min exceeds the
 * store cap, or out of memory.  elems is never NULL. */
iw_table *iw_table_new(iw_store *s, uint8_t elemtype, iw_limits lim,
                       void *init)
{
    iw_table *t;
    uint32_t i;

    if (!s || !reftype_ok(elemtype) || lim.min > s->cfg.max_table_elems)
        return NULL;
    if (lim.has_max && lim.max < lim.min)
        return NULL;
    if (!funcref_in_store(s, elemtype, init))
        return NULL;
    t = iw__calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->elems = iw__calloc(lim.min, sizeof(iw__slot));
    if (!t->elems) {
        iw__free(t);
        return NULL;
    }
    for (i = 0; i < lim.min; i++)
        t->elems[i] = (iw__slot)(uintptr_t)init;
    t->elemtype = elemtype;
    t->size = lim.min;
    t->lim = lim;
    t->lim.has_max = lim.has_max ? 1 : 0;
    t->store = s;
    iw__store_adopt(s, &t->obj, table_destroy);
    return t;
}

uint32_t iw_table_size(const iw_table *t)
{
    return t ? t->size : 0;
}

iw_status iw_table_get(const iw_table *t, uint32_t i, iw_val *out)
{
    if (!t || !out || i >= t->size)
        return IW_ARG;
    *out = slot_to_val(t->elemtype, t->elems[i]);
    return IW_OK;
}

iw_status iw_table_set(iw_table *t, uint32_t i, iw_val v)
{
    if (!t || i >= t->size || v.type != t->elemtype ||
        !funcref_in_store(t->store, v.type, v.of.ref))
        return IW_ARG;
    t->elems[i] = (iw__slot)(uintptr_t)v.of.ref;
    return IW_OK;
}

/* Grows t by delta entries set to init.  Returns the old size, or -1 when the
 * result would exceed the declared max, the store cap or UINT32_MAX, or when
 * reallocation fails (t is unchanged then). */
int64_t iw__table_grow(iw_table *t, uint32_t delta, iw__slot init)
{
    uint64_t newsize, i;
    iw__slot *p;
    uint32_t old;

    if (!t)
        return -1;
    old = t->size;
    newsize = (uint64_t)old + delta;
    if (newsize > UINT32_MAX || (t->lim.has_max && newsize > t->lim.max) ||
        (t->store && newsize > t->store->cfg.max_table_elems))
        return -1;
    if (delta == 0)
        return old;
    if (newsize > SIZE_MAX / sizeof(iw__slot))
        return -1;
    p = iw__realloc(t->elems, (size_t)newsize * sizeof(iw__slot));
    if (!p)
        return -1;
    for (i = old; i < newsize; i++)
        p[i] = init;
    t->elems = p;
    t->size = (uint32_t)newsize;
    return old;
}

/* ------------------------------------------------------------------------ */
/* Globals.                                                                 */

static void global_destroy(iw__obj *o)
{
    iw__free(o);
}

static iw_global *global_create(iw_store *s, uint8_t type, int mut,
                                iw__slot val)
{
    iw_global *g = iw__calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->type = type;
    g->mut = mut ? 1 : 0;
    g->val = val;
    iw__store_adopt(s, &g->obj, global_destroy);
    return g;
}

/* New global holding v (its type is v.type), adopted by s; NULL on a bad
 * type, a funcref from another store, or out of memory. */
iw_global *iw_global_new(iw_store *s, iw_val v, int mut)
{
    if (!s || !valtype_ok(v.type) || !funcref_in_store(s, v.type, v.of.ref))
        return NULL;
    return global_create(s, v.type, mut, val_to_slot(v));
}

iw_val iw_global_get(const iw_global *g)
{
    if (!g) {
        iw_val v;
        memset(&v, 0, sizeof v);
        return v;
    }
    return slot_to_val(g->type, g->val);
}

iw_status iw_global_set(iw_global *g, iw_val v)
{
    if (!g || !g->mut || v.type != g->type)
        return IW_ARG;
    g->val = val_to_slot(v);
    return IW_OK;
}

int iw_global_mut(const iw_global *g)
{
    return g ? g->mut : 0;
}

/* ------------------------------------------------------------------------ */
/* Functions.                                                               */

static void func_destroy(iw__obj *o)
{
    iw__free(o);
}

/* Creates a host function adopted by s.  The signature arrays are copied
 * into the same allocation as the function object.  Returns NULL on bad
 * arguments (NULL fn, invalid value types) or out of memory.  Host
 * functions have no module, so their index is UINT32_MAX. */
iw_func *iw_func_new_host(iw_store *s, const uint8_t *params, uint32_t nparams,
                          const uint8_t *results, uint32_t nresults,
                          iw_host_fn fn, void *user)
{
    iw_func *f;
    uint8_t *types;
    uint32_t i;
    size_t extra;

    if (!s || !fn || (nparams && !params) || (nresults && !results))
        return NULL;
    for (i = 0; i < nparams; i++)
        if (!valtype_ok(params[i]))
            return NULL;
    for (i = 0; i < nresults; i++)
        if (!valtype_ok(results[i]))
            return NULL;
    if ((size_t)nparams > SIZE_MAX - sizeof *f - nresults)
        return NULL;
    extra = (size_t)nparams + nresults;
    f = iw__malloc(sizeof *f + extra);
    if (!f)
        return NULL;
    memset(f, 0, sizeof *f);
    types = (uint8_t *)(f + 1);
    if (nparams)
        memcpy(types, params, nparams);
    if (nresults)
        memcpy(types + nparams, results, nresults);
    f->type.nparams = nparams;
    f->type.nresults = nresults;
    f->type.params = types;
    f->type.results = types + nparams;
    f->inst = NULL;
    f->code = NULL;
    f->index = UINT32_MAX;
    f->host = fn;
    f->host_data = user;
    f->store = s;
    iw__store_adopt(s, &f->obj, func_destroy);
    return f;
}

iw_functype iw_func_type(const iw_func *f)
{
    if (!f) {
        iw_functype t;
        memset(&t, 0, sizeof t);
        return t;
    }
    return f->type;
}

/* ------------------------------------------------------------------------ */
/* Instantiation.                                                           */

/* The instance and all its arrays (including the defined functions and the
 * evaluated element items) live in one allocation. */
static void instance_destroy(iw__obj *o)
{
    iw__free(o);
}

/* Records an instantiation error (not a trap) in the store and in err;
 * returns st. */
static iw_status inst_fail(iw_store *s, char *err, size_t errlen, iw_status st,
                           const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

static iw_status inst_fail(iw_store *s, char *err, size_t errlen, iw_status st,
                           const char *fmt, ...)
{
    va_list ap;
    s->trap = IW_TRAP_NONE;
    s->trap_func = -1;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    iw__errf(err, errlen, "%s", s->errmsg);
    return st;
}

/* Limits matching for imports: the actual object's current size and max
 * against the declaration. */
static bool limits_match(uint32_t cur, const iw_limits *actual,
                         const iw_limits *decl)
{
    if (cur < decl->min)
        return false;
    if (decl->has_max && (!actual->has_max || actual->max > decl->max))
        return false;
    return true;
}

/* Checks import i of m against the given extern; fills why on mismatch. */
static bool import_ok(const iw_store *s, const iw_module *m, uint32_t i,
                      const iw_extern *e, const char **why)
{
    const iw__import *imp = &m->imports[i];

    *why = "";
    if ((unsigned)e->kind != imp->kind) {
        *why = " (wrong kind)";
        return false;
    }
    switch (imp->kind) {
    case IW_EXTERN_FUNC: {
        const iw_func *f = e->of.func;
        if (imp->index >= m->nimported_funcs || !f || f->store != s)
            return false;
        if (m->func_types[imp->index] >= m->ntypes)
            return false;
        return iw__functype_eq(&f->type, &m->types[m->func_types[imp->index]]);
    }
    case IW_EXTERN_TABLE: {
        const iw_table *t = e->of.table;
        const iw__tabletype *tt;
        if (imp->index >= m->nimported_tables || !t || t->store != s)
            return false;
        tt = &m->tables[imp->index];
        return t->elemtype == tt->elemtype &&
               limits_match(t->size, &t->lim, &tt->lim);
    }
    case IW_EXTERN_MEMORY: {
        const iw_memory *mem = e->of.memory;
        if (imp->index >= m->nimported_mems || !mem || mem->store != s)
            return false;
        return limits_match(mem->pages, &mem->lim, &m->mems[imp->index]);
    }
    case IW_EXTERN_GLOBAL: {
        const iw_global *g = e->of.global;
        const iw__globaltype *gt;
        if (imp->index >= m->nimported_globals || !g)
            return false;
        gt = &m->globals[imp->index];
        return g->type == gt->type && (g->mut != 0) == (gt->mut != 0);
    }
    default:
        return false;
    }
}

/* Reserves count*size bytes aligned to `align` at the end of a layout of
 * *total bytes; *off receives the offset.  False on overflow. */
static bool lay(size_t *total, size_t count, size_t size, size_t align,
                size_t *off)
{
    size_t o = *total;
    if (o > SIZE_MAX - (align - 1))
        return false;
    o = (o + align - 1) / align * align;
    if (size && count > (SIZE_MAX - o) / size)
        return false;
    *off = o;
    *total = o + count * size;
    return true;
}

/* Evaluates a constant expression in the (partially built) instance. */
static bool eval_const(const iw_instance *inst, const iw__constexpr *ce,
                       iw__slot *out)
{
    const iw_module *m = inst->mod;
    switch (ce->kind) {
    case IW__CONST_VALUE:
        *out = ce->value;
        return true;
    case IW__CONST_REF_NULL:
        *out = 0;
        return true;
    case IW__CONST_REF_FUNC:
        if (ce->index >= m->nfuncs || !inst->funcs[ce->index])
            return false;
        *out = (iw__slot)(uintptr_t)inst->funcs[ce->index];
        return true;
    case IW__CONST_GLOBAL_GET:
        if (ce->index >= m->nglobals || !inst->globals[ce->index])
            return false;
        *out = inst->globals[ce->index]->val;
        return true;
    default:
        return false;
    }
}

/* Allocates the instance block (adopted by s) with every array laid out in
 * it.  Returns NULL on overflow or out of memory. */
static iw_instance *instance_alloc(iw_store *s, const iw_module *m)
{
    size_t total = sizeof(iw_instance);
    size_t o_funcs, o_tables, o_mems, o_globals, o_elems, o_fdef, o_items;
    size_t o_dropped;
    uint64_t nitems = 0;
    uint32_t ndef = m->nfuncs - m->nimported_funcs;
    uint32_t i;
    size_t pos;
    uint8_t *base;
    iw_instance *inst;
    iw_func *fdef;
    iw__slot *items;

    for (i = 0; i < m->nelems; i++)
        nitems += m->elems[i].count;
    if (nitems > SIZE_MAX)
        return NULL;
    if (!lay(&total, m->nfuncs, sizeof(iw_func *), _Alignof(iw_func *),
             &o_funcs) ||
        !lay(&total, m->ntables, sizeof(iw_table *), _Alignof(iw_table *),
             &o_tables) ||
        !lay(&total, m->nmems, sizeof(iw_memory *), _Alignof(iw_memory *),
             &o_mems) ||
        !lay(&total, m->nglobals, sizeof(iw_global *), _Alignof(iw_global *),
             &o_globals) ||
        !lay(&total, m->nelems, sizeof(iw__elemrt), _Alignof(iw__elemrt),
             &o_elems) ||
        !lay(&total, ndef, sizeof(iw_func), _Alignof(iw_func), &o_fdef) ||
        !lay(&total, (size_t)nitems, sizeof(iw__slot), _Alignof(iw__slot),
             &o_items) ||
        !lay(&total, m->ndatas, 1, 1, &o_dropped))
        return NULL;
    base = iw__calloc(1, total);
    if (!base)
        return NULL;
    inst = (iw_instance *)(void *)base;
    inst->store = s;
    inst->mod = m;
    inst->funcs = (iw_func **)(void *)(base + o_funcs);
    inst->tables = (iw_table **)(void *)(base + o_tables);
    inst->mems = (iw_memory **)(void *)(base + o_mems);
    inst->globals = (iw_global **)(void *)(base + o_globals);
    inst->elems = (iw__elemrt *)(void *)(base + o_elems);
    inst->data_dropped = base + o_dropped;
    fdef = (iw_func *)(void *)(base + o_fdef);
    items = (iw__slot *)(void *)(base + o_items);
    for (i = 0; i < ndef; i++) {
        uint32_t idx = m->nimported_funcs + i;
        iw_func *f = &fdef[i];
        f->type = m->types[m->func_types[idx]];
        f->inst = inst;
        f->code = &m->codes[i];
        f->index = idx;
        f->store = s;
        inst->funcs[idx] = f;
    }
    for (i = 0, pos = 0; i < m->nelems; i++) {
        inst->elems[i].count = m->elems[i].count;
        inst->elems[i].items = items + pos;
        pos += m->elems[i].count;
    }
    iw__store_adopt(s, &inst->obj, instance_destroy);
    return inst;
}

/* Runs active element segments (table.init + elem.drop), drops declarative
 * ones, then runs active data segments (memory.init + data.drop), stopping
 * at the first out-of-bounds segment with a trap recorded in the store. */
static iw_status init_segments(iw_store *s, iw_instance *inst)
{
    const iw_module *m = inst->mod;
    uint32_t i;
    iw__slot off;

    for (i = 0; i < m->nelems; i++) {
        const iw__elem *seg = &m->elems[i];
        iw__elemrt *rt = &inst->elems[i];
        if (seg->mode == IW__SEG_ACTIVE) {
            iw_table *t;
            uint32_t o;
            if (seg->table >= m->ntables || !eval_const(inst, &seg->offset, &off))
                goto bad;
            t = inst->tables[seg->table];
            o = (uint32_t)off;
            if ((uint64_t)o + rt->count > t->size) {
                iw__store_trap(s, IW_TRAP_OOB_TABLE, -1, NULL);
                return IW_TRAP;
            }
            if (rt->count)
                memcpy(t->elems + o, rt->items, rt->count * sizeof(iw__slot));
            rt->count = 0;
        } else if (seg->mode == IW__SEG_DECLARATIVE) {
            rt->count = 0;
        }
    }
    for (i = 0; i < m->ndatas; i++) {
        const iw__data *seg = &m->datas[i];
        if (seg->mode == IW__SEG_ACTIVE) {
            iw_memory *mem;
            uint32_t o;
            if (seg->mem >= m->nmems || !eval_const(inst, &seg->offset, &off))
                goto bad;
            mem = inst->mems[seg->mem];
            o = (uint32_t)off;
            if ((uint64_t)o + seg->len > mem->size) {
                iw__store_trap(s, IW_TRAP_OOB_MEMORY, -1, NULL);
                return IW_TRAP;
            }
            if (seg->len)
                memcpy(mem->data + o, seg->bytes, seg->len);
            inst->data_dropped[i] = 1;
        }
    }
    return IW_OK;
bad:
    iw__store_trap(s, IW_TRAP_NONE, -1, "invalid segment in module");
    return IW_INVALID;
}

/* Instantiates m in s (see wasm.h).  Everything created, including the
 * instance itself, is adopted by the store even when instantiation fails;
 * *out is set only on success. */
iw_status iw_instantiate(iw_store *s, const iw_module *m,
                         const iw_extern *imports, size_t nimports,
                         iw_instance **out, char *err, size_t errlen)
{
    iw_instance *inst;
    uint32_t i;
    iw_status st;

    if (out)
        *out = NULL;
    if (!s || !m || !out || (nimports && !imports)) {
        iw__errf(err, errlen, "iw_instantiate: invalid argument");
        if (s)
            iw__store_trap(s, IW_TRAP_NONE, -1, "iw_instantiate: invalid argument");
        return IW_ARG;
    }
    s->trap = IW_TRAP_NONE;
    s->trap_func = -1;
    s->errmsg[0] = '\0';

    /* Link check: nothing is created until every import matches. */
    if (nimports != m->nimports)
        return inst_fail(s, err, errlen, IW_LINK,
                         "incompatible import type: module has %u imports, "
                         "%zu given",
                         (unsigned)m->nimports, nimports);
    for (i = 0; i < m->nimports; i++) {
        const char *why;
        if (!import_ok(s, m, i, &imports[i], &why))
            return inst_fail(s, err, errlen, IW_LINK,
                             "incompatible import type: import %u %s.%s (%s)%s",
                             (unsigned)i, m->imports[i].module,
                             m->imports[i].name,
                             iw_extern_kind_name(
                                 (iw_extern_kind)m->imports[i].kind),
                             why);
    }

    inst = instance_alloc(s, m);
    if (!inst)
        return inst_fail(s, err, errlen, IW_NOMEM, "out of memory");

    for (i = 0; i < m->nimports; i++) {
        const iw__import *imp = &m->imports[i];
        switch (imp->kind) {
        case IW_EXTERN_FUNC:
            inst->funcs[imp->index] = imports[i].of.func;
            break;
        case IW_EXTERN_TABLE:
            inst->tables[imp->index] = imports[i].of.table;
            break;
        case IW_EXTERN_MEMORY:
            inst->mems[imp->index] = imports[i].of.memory;
            break;
        default:
            inst->globals[imp->index] = imports[i].of.global;
            break;
        }
    }

    for (i = m->nimported_tables; i < m->ntables; i++) {
        const iw__tabletype *tt = &m->tables[i];
        if (tt->lim.min > s->cfg.max_table_elems)
            return inst_fail(s, err, errlen, IW_NOMEM,
                             "table %u: %u elements exceed the store limit "
                             "of %u",
                             (unsigned)i, (unsigned)tt->lim.min,
                             (unsigned)s->cfg.max_table_elems);
        inst->tables[i] = iw_table_new(s, tt->elemtype, tt->lim, NULL);
        if (!inst->tables[i])
            return inst_fail(s, err, errlen, IW_NOMEM,
                             "out of memory (table %u)", (unsigned)i);
    }
    for (i = m->nimported_mems; i < m->nmems; i++) {
        const iw_limits *lim = &m->mems[i];
        if (lim->min > s->cfg.max_memory_pages)
            return inst_fail(s, err, errlen, IW_NOMEM,
                             "memory %u: %u pages exceed the store limit "
                             "of %u",
                             (unsigned)i, (unsigned)lim->min,
                             (unsigned)s->cfg.max_memory_pages);
        inst->mems[i] = iw_memory_new(s, *lim);
        if (!inst->mems[i])
            return inst_fail(s, err, errlen, IW_NOMEM,
                             "out of memory (memory %u)", (unsigned)i);
    }
    inst->mem0 = m->nmems ? inst->mems[0] : NULL;

    for (i = m->nimported_globals; i < m->nglobals; i++) {
        const iw__globaltype *gt = &m->globals[i];
        iw__slot v;
        if (!eval_const(inst, &gt->init, &v))
            return inst_fail(s, err, errlen, IW_INVALID,
                             "global %u: invalid initializer", (unsigned)i);
        inst->globals[i] = global_create(s, gt->type, gt->mut, v);
        if (!inst->globals[i])
            return inst_fail(s, err, errlen, IW_NOMEM,
                             "out of memory (global %u)", (unsigned)i);
    }

    for (i = 0; i < m->nelems; i++) {
        const iw__elem *seg = &m->elems[i];
        uint32_t k;
        for (k = 0; k < seg->count; k++)
            if (!eval_const(inst, &seg->items[k], &inst->elems[i].items[k]))
                return inst_fail(s, err, errlen, IW_INVALID,
                                 "element segment %u: invalid item %u",
                                 (unsigned)i, (unsigned)k);
    }

    st = init_segments(s, inst);
    if (st == IW_OK && m->has_start) {
        if (m->start >= m->nfuncs)
            return inst_fail(s, err, errlen, IW_INVALID,
                             "invalid start function %u", (unsigned)m->start);
        st = iw__exec(s, inst->funcs[m->start]);
    }
    if (st != IW_OK) {
        iw__errf(err, errlen, "%s", s->errmsg[0] ? s->errmsg : iw_status_msg(st));
        return st;
    }
    *out = inst;
    return IW_OK;
}

/* ------------------------------------------------------------------------ */
/* Instance accessors.                                                      */

iw_status iw_instance_export(const iw_instance *inst, const char *name,
                             iw_extern *out)
{
    if (!name)
        return IW_ARG;
    return iw_instance_export_n(inst, name, strlen(name), out);
}

iw_status iw_instance_export_n(const iw_instance *inst, const char *name,
                               size_t len, iw_extern *out)
{
    const iw_module *m;
    uint32_t i;

    if (!inst || !name || !out)
        return IW_ARG;
    m = inst->mod;
    for (i = 0; i < m->nexports; i++) {
        const iw__export *e = &m->exports[i];
        if (e->len != len || memcmp(e->name, name, len) != 0)
            continue;
        memset(out, 0, sizeof *out);
        out->kind = (iw_extern_kind)e->kind;
        switch (e->kind) {
        case IW_EXTERN_FUNC:
            if (e->index >= m->nfuncs)
                return IW_NOTFOUND;
            out->of.func = inst->funcs[e->index];
            return IW_OK;
        case IW_EXTERN_TABLE:
            if (e->index >= m->ntables)
                return IW_NOTFOUND;
            out->of.table = inst->tables[e->index];
            return IW_OK;
        case IW_EXTERN_MEMORY:
            if (e->index >= m->nmems)
                return IW_NOTFOUND;
            out->of.memory = inst->mems[e->index];
            return IW_OK;
        case IW_EXTERN_GLOBAL:
            if (e->index >= m->nglobals)
                return IW_NOTFOUND;
            out->of.global = inst->globals[e->index];
            return IW_OK;
        default:
            return IW_NOTFOUND;
        }
    }
    return IW_NOTFOUND;
}

iw_func *iw_instance_func(const iw_instance *inst, const char *name)
{
    iw_extern e;
    if (iw_instance_export(inst, name, &e) != IW_OK ||
        e.kind != IW_EXTERN_FUNC)
        return NULL;
    return e.of.func;
}

iw_memory *iw_instance_memory(const iw_instance *inst)
{
    return inst ? inst->mem0 : NULL;
}

const iw_module *iw_instance_module(const iw_instance *inst)
{
    return inst ? inst->mod : NULL;
}
