/*
 * decode.c - the WebAssembly binary decoder: the bounded LEB128/byte readers
 * shared with the validator, the section-by-section decoding (and validation
 * of everything outside function bodies) into struct iw_module, and the
 * module query API.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasm_int.h"

/* ------------------------------------------------------------------------ */
/* Readers.                                                                 */

/* Name of the section being decoded ("type", "code", ...), or NULL outside
 * any section.  The readers use it to say where an error happened; it is
 * per thread because modules may be loaded by several threads at once. */
static _Thread_local const char *cur_section;

size_t iw__reader_offset(const iw__reader *r)
{
    return (size_t)(r->p - r->base);
}

/* Writes "<msg> (<section> section, offset 0x<off>)" into r->err. */
static bool rd_fail(const iw__reader *r, size_t off, const char *msg)
{
    if (cur_section)
        iw__errf(r->err, r->errlen, "%s (%s section, offset 0x%zx)", msg,
                 cur_section, off);
    else
        iw__errf(r->err, r->errlen, "%s (offset 0x%zx)", msg, off);
    return false;
}

/* The spec wording: "unexpected end" at the top level, the longer form
 * inside sections and function bodies. */
static bool rd_eof(const iw__reader *r)
{
    return rd_fail(r, iw__reader_offset(r),
                   cur_section ? "unexpected end of section or function"
                               : "unexpected end");
}

bool iw__read_u8(iw__reader *r, uint8_t *out)
{
    *out =
        0; /* defined even on failure (keeps compilers' flow analysis quiet) */
    if (r->p >= r->end)
        return rd_eof(r);
    *out = *r->p++;
    return true;
}

/* Unsigned LEB128 of at most `bits` bits: at most ceil(bits/7) bytes and
 * the unused bits of the last byte must be zero. */
static bool read_uleb(iw__reader *r, int bits, uint64_t *out)
{
    uint64_t v = 0;
    unsigned shift = 0;
    int n = bits;
    uint8_t b;

    *out = 0;
    for (;;) {
        if (n <= 0)
            return rd_fail(r, iw__reader_offset(r),
                           "integer representation too long");
        if (r->p >= r->end)
            return rd_eof(r);
        b = *r->p;
        if (n < 7 && (unsigned)(b & 0x7f) >= (1u << n))
            return rd_fail(r, iw__reader_offset(r), "integer too large");
        r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
        shift += 7;
        n -= 7;
    }
    *out = v;
    return true;
}

/* Two's complement reinterpretation without implementation-defined casts. */
static int64_t u2s64(uint64_t v)
{
    if (v <= (uint64_t)INT64_MAX)
        return (int64_t)v;
    return -(int64_t)(~v) - 1;
}

/* Signed LEB128 of at most `bits` bits: the unused bits of the last byte
 * must be a sign extension of the last used one. */
static bool read_sleb(iw__reader *r, int bits, int64_t *out)
{
    uint64_t v = 0;
    unsigned shift = 0;
    int n = bits;
    uint8_t b;

    *out = 0;
    for (;;) {
        if (n <= 0)
            return rd_fail(r, iw__reader_offset(r),
                           "integer representation too long");
        if (r->p >= r->end)
            return rd_eof(r);
        b = *r->p;
        if (n < 7) {
            uint8_t mask = (uint8_t)((0xFFu << (n - 1)) & 0x7f);
            if ((b & mask) != 0 && (b & mask) != mask)
                return rd_fail(r, iw__reader_offset(r), "integer too large");
        }
        r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        n -= 7;
        if (!(b & 0x80))
            break;
    }
    if (shift < 64 && (b & 0x40))
        v |= ~(uint64_t)0 << shift;
    *out = u2s64(v);
    return true;
}

bool iw__read_u32(iw__reader *r, uint32_t *out)
{
    uint64_t v;
    *out = 0;
    if (!read_uleb(r, 32, &v))
        return false;
    *out = (uint32_t)v;
    return true;
}

bool iw__read_s32(iw__reader *r, int32_t *out)
{
    int64_t v;
    *out = 0;
    if (!read_sleb(r, 32, &v))
        return false;
    *out = (int32_t)v; /* in range: the last byte's bits were checked */
    return true;
}

bool iw__read_s33(iw__reader *r, int64_t *out)
{
    return read_sleb(r, 33, out);
}

bool iw__read_s64(iw__reader *r, int64_t *out)
{
    return read_sleb(r, 64, out);
}

bool iw__read_f32(iw__reader *r, uint32_t *bits)
{
    uint32_t v = 0;
    int i;
    *bits = 0;
    if (r->end - r->p < 4)
        return rd_eof(r);
    for (i = 3; i >= 0; i--)
        v = (v << 8) | r->p[i];
    r->p += 4;
    *bits = v;
    return true;
}

bool iw__read_f64(iw__reader *r, uint64_t *bits)
{
    uint64_t v = 0;
    int i;
    *bits = 0;
    if (r->end - r->p < 8)
        return rd_eof(r);
    for (i = 7; i >= 0; i--)
        v = (v << 8) | r->p[i];
    r->p += 8;
    *bits = v;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Decoder state and error helpers.                                         */

enum {
    SEC_CUSTOM = 0,
    SEC_TYPE,
    SEC_IMPORT,
    SEC_FUNCTION,
    SEC_TABLE,
    SEC_MEMORY,
    SEC_GLOBAL,
    SEC_EXPORT,
    SEC_START,
    SEC_ELEMENT,
    SEC_CODE,
    SEC_DATA,
    SEC_DATACOUNT,
    SEC_COUNT
};

static const char *const section_names[SEC_COUNT] = {
    "custom", "type",  "import",  "function", "table", "memory",    "global",
    "export", "start", "element", "code",     "data",  "data count"};

/* Position of each section id in the required order (data count sits
 * between element and code). */
static const uint8_t section_rank[SEC_COUNT] = {0, 1, 2, 3,  4,  5, 6,
                                                7, 8, 9, 11, 12, 10};

typedef struct dec {
    iw__reader r; /* current reader; reads are bounded by the end
                     of the binary, sections are checked for size
                     afterwards (as the reference decoder does) */
    iw_module *m;
    iw_status st;         /* status of the failure being reported */
    bool funcs_final;     /* function index space complete (func_declared
                             allocated) */
    const uint8_t *names; /* payload of the "name" custom section, or NULL */
    const uint8_t *names_end;
    iw__section *last_sec; /* tail of m->sections */
} dec;

/* Reports an error of status st at byte offset off; always returns false. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 4, 5)))
#endif
static bool
fail_at(dec *d, iw_status st, size_t off, const char *fmt, ...)
{
    char msg[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    d->st = st;
    return rd_fail(&d->r, off, msg);
}

static bool nomem(dec *d)
{
    return fail_at(d, IW_NOMEM, iw__reader_offset(&d->r), "out of memory");
}

static size_t pos(const dec *d)
{
    return iw__reader_offset(&d->r);
}

static size_t remaining(const dec *d)
{
    return (size_t)(d->r.end - d->r.p);
}

/* Allocates count zeroed elements in the module arena.  Returns NULL for
 * count 0 (with *ok untouched) or on failure (*ok = false, IW_NOMEM). */
static void *arena_arr(dec *d, size_t count, size_t size, bool *ok)
{
    void *p;
    if (count == 0)
        return NULL;
    p = iw__arena_array(&d->m->arena, count, size);
    if (!p) {
        *ok = false;
        nomem(d);
    }
    return p;
}

static bool rd_u8(dec *d, uint8_t *out)
{
    return iw__read_u8(&d->r, out);
}
static bool rd_u32(dec *d, uint32_t *out)
{
    return iw__read_u32(&d->r, out);
}

/* Reads a vector length and checks, before anything is allocated, that at
 * least that many bytes remain (each element needs one).  Like the
 * reference decoder, which would run out of bytes while reading the
 * elements, it reports "unexpected end" otherwise. */
static bool rd_count(dec *d, uint32_t *n)
{
    size_t off = pos(d);
    if (!rd_u32(d, n))
        return false;
    if (*n > remaining(d))
        return fail_at(d, IW_MALFORMED, off,
                       "unexpected end of section or function (%u entries "
                       "declared, %zu bytes left)",
                       (unsigned)*n, remaining(d));
    return true;
}

/* True when s[0..len) is well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static bool utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t b = s[i];
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (b < 0x80) {
            i++;
            continue;
        }
        if (b >= 0xC2 && b <= 0xDF) {
            need = 1;
        } else if (b >= 0xE0 && b <= 0xEF) {
            need = 2;
            if (b == 0xE0)
                lo = 0xA0;
            else if (b == 0xED)
                hi = 0x9F;
        } else if (b >= 0xF0 && b <= 0xF4) {
            need = 3;
            if (b == 0xF0)
                lo = 0x90;
            else if (b == 0xF4)
                hi = 0x8F;
        } else {
            return false;
        }
        if (len - i - 1 < need)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return false;
        i += need + 1;
    }
    return true;
}

/* Reads a name (length + UTF-8 bytes) into a NUL-terminated copy in the
 * module arena.  *out stays owned by the module. */
static bool rd_name(dec *d, char **out, uint32_t *len_out)
{
    size_t off = pos(d);
    uint32_t len;
    char *s;

    if (!rd_u32(d, &len))
        return false;
    if (len > remaining(d))
        return fail_at(d, IW_MALFORMED, off, "length out of bounds");
    if (!utf8_valid(d->r.p, len))
        return fail_at(d, IW_MALFORMED, off, "malformed UTF-8 encoding");
    s = iw__arena_alloc(&d->m->arena, (size_t)len + 1);
    if (!s)
        return nomem(d);
    memcpy(s, d->r.p, len);
    s[len] = '\0';
    d->r.p += len;
    *out = s;
    if (len_out)
        *len_out = len;
    return true;
}

/* ------------------------------------------------------------------------ */
/* Types.                                                                   */

static bool is_valtype(uint8_t t)
{
    return t == IW_I32 || t == IW_I64 || t == IW_F32 || t == IW_F64 ||
           t == IW_FUNCREF || t == IW_EXTERNREF;
}

static bool rd_valtype(dec *d, uint8_t *out)
{
    size_t off = pos(d);
    if (!rd_u8(d, out))
        return false;
    if (!is_valtype(*out))
        return fail_at(d, IW_MALFORMED, off, "malformed value type 0x%02x",
                       *out);
    return true;
}

static bool rd_reftype(dec *d, uint8_t *out)
{
    size_t off = pos(d);
    if (!rd_u8(d, out))
        return false;
    if (*out != IW_FUNCREF && *out != IW_EXTERNREF)
        return fail_at(d, IW_MALFORMED, off, "malformed reference type 0x%02x",
                       *out);
    return true;
}

/* Limits: a flag (a 1-bit LEB128: 0 = min only, 1 = min and max). */
static bool rd_limits(dec *d, iw_limits *lim)
{
    size_t off = pos(d);
    uint8_t flag;
    if (!rd_u8(d, &flag))
        return false;
    if ((flag & 0x7f) > 1)
        return fail_at(d, IW_MALFORMED, off,
                       "integer too large (limits flag 0x%02x)", flag);
    if (flag & 0x80)
        return fail_at(d, IW_MALFORMED, off,
                       "integer representation too long (limits flag)");
    lim->has_max = flag;
    lim->max = 0;
    if (!rd_u32(d, &lim->min))
        return false;
    if (flag && !rd_u32(d, &lim->max))
        return false;
    return true;
}

static bool rd_memtype(dec *d, iw_limits *lim)
{
    size_t off = pos(d);
    if (!rd_limits(d, lim))
        return false;
    if (lim->min > 65536 || (lim->has_max && lim->max > 65536))
        return fail_at(d, IW_INVALID, off,
                       "memory size must be at most 65536 pages (4GiB)");
    if (lim->has_max && lim->min > lim->max)
        return fail_at(d, IW_INVALID, off,
                       "size minimum must not be greater than maximum");
    return true;
}

static bool rd_tabletype(dec *d, iw__tabletype *t)
{
    size_t off;
    if (!rd_reftype(d, &t->elemtype))
        return false;
    off = pos(d);
    if (!rd_limits(d, &t->lim))
        return false;
    if (t->lim.has_max && t->lim.min > t->lim.max)
        return fail_at(d, IW_INVALID, off,
                       "size minimum must not be greater than maximum");
    return true;
}

static bool rd_globaltype(dec *d, iw__globaltype *g)
{
    size_t off;
    if (!rd_valtype(d, &g->type))
        return false;
    off = pos(d);
    if (!rd_u8(d, &g->mut))
        return false;
    if (g->mut > 1)
        return fail_at(d, IW_MALFORMED, off, "malformed mutability");
    return true;
}

/* ------------------------------------------------------------------------ */
/* Constant expressions.                                                    */

/* True for the single-byte opcodes of WebAssembly 2.0 (and the 0xFC
 * prefix): a valid instruction that is not constant is invalid in a
 * constant expression, an unknown byte is malformed. */
static bool known_opcode(uint8_t op)
{
    if (op <= 0x05 || (op >= 0x0B && op <= 0x11) || (op >= 0x1A && op <= 0x1C))
        return true;
    if ((op >= 0x20 && op <= 0x26) || (op >= 0x28 && op <= 0xC4))
        return true;
    return (op >= 0xD0 && op <= 0xD2) || op == 0xFC;
}

static void mark_declared(dec *d, uint32_t f)
{
    if (d->m->func_declared && f < d->m->nfuncs)
        d->m->func_declared[f] = 1;
}

/* Decodes a constant expression (up to and including `end`) whose result
 * must have type `want`.  Every instruction must be constant ("constant
 * expression required"), then the sequence must produce exactly one value
 * of type want ("type mismatch").  ref.func marks its function declared. */
static bool rd_const(dec *d, uint8_t want, iw__constexpr *ce)
{
    iw_module *m = d->m;
    size_t start = pos(d);
    uint32_t nvals = 0;

    memset(ce, 0, sizeof *ce);
    for (;;) {
        size_t off = pos(d);
        iw__constexpr c;
        uint8_t op;

        memset(&c, 0, sizeof c);
        if (!rd_u8(d, &op))
            return false;
        if (op == 0x0B)
            break;
        switch (op) {
        case 0x41: {
            int32_t v;
            if (!iw__read_s32(&d->r, &v))
                return false;
            c.type = IW_I32;
            c.value = (uint32_t)v;
            break;
        }
        case 0x42: {
            int64_t v;
            if (!iw__read_s64(&d->r, &v))
                return false;
            c.type = IW_I64;
            c.value = (uint64_t)v;
            break;
        }
        case 0x43: {
            uint32_t v;
            if (!iw__read_f32(&d->r, &v))
                return false;
            c.type = IW_F32;
            c.value = v;
            break;
        }
        case 0x44: {
            uint64_t v;
            if (!iw__read_f64(&d->r, &v))
                return false;
            c.type = IW_F64;
            c.value = v;
            break;
        }
        case 0xD0:
            if (!rd_reftype(d, &c.type))
                return false;
            c.kind = IW__CONST_REF_NULL;
            break;
        case 0xD2:
            if (!rd_u32(d, &c.index))
                return false;
            if (c.index >= m->nfuncs)
                return fail_at(d, IW_INVALID, off, "unknown function %u",
                               (unsigned)c.index);
            c.kind = IW__CONST_REF_FUNC;
            c.type = IW_FUNCREF;
            mark_declared(d, c.index);
            break;
        case 0x23:
            if (!rd_u32(d, &c.index))
                return false;
            if (c.index >= m->nimported_globals)
                return fail_at(d, IW_INVALID, off, "unknown global %u",
                               (unsigned)c.index);
            if (m->globals[c.index].mut)
                return fail_at(d, IW_INVALID, off,
                               "constant expression required (global %u is "
                               "mutable)",
                               (unsigned)c.index);
            c.kind = IW__CONST_GLOBAL_GET;
            c.type = m->globals[c.index].type;
            break;
        default:
            if (known_opcode(op))
                return fail_at(d, IW_INVALID, off,
                               "constant expression required (opcode 0x%02x)",
                               op);
            return fail_at(d, IW_MALFORMED, off, "illegal opcode 0x%02x", op);
        }
        if (nvals == 0)
            *ce = c;
        nvals++;
    }
    if (nvals != 1 || ce->type != want)
        return fail_at(d, IW_INVALID, start,
                       "type mismatch in constant expression (expected %s)",
                       iw_valtype_name(want));
    return true;
}

/* ------------------------------------------------------------------------ */
/* Sections.  Each sec_<name>() decodes one section payload from d->r into
 * the module (everything it allocates lives in the module arena) and
 * returns false after reporting the error (status in d->st).  Checks that
 * need only what precedes the section (index ranges, types of constant
 * expressions, limits) are done here; function bodies go to validate.c. */

static bool sec_type(dec *d)
{
    iw_module *m = d->m;
    uint32_t n, i;
    bool ok = true;

    if (!rd_count(d, &n))
        return false;
    m->types = arena_arr(d, n, sizeof *m->types, &ok);
    if (!ok)
        return false;
    for (i = 0; i < n; i++) {
        iw_functype *t = &m->types[i];
        size_t off = pos(d);
        uint8_t form, *buf;
        uint32_t np, nr, k;

        if (!rd_u8(d, &form))
            return false;
        if (form & 0x80)
            return fail_at(d, IW_MALFORMED, off,
                           "integer representation too long (type form)");
        if (form != 0x60)
            return fail_at(d, IW_MALFORMED, off,
                           "malformed function type 0x%02x", form);
        if (!rd_count(d, &np))
            return false;
        buf = arena_arr(d, np, 1, &ok);
        if (!ok)
            return false;
        for (k = 0; k < np; k++)
            if (!rd_valtype(d, &buf[k]))
                return false;
        t->nparams = np;
        t->params = buf;
        if (!rd_count(d, &nr))
            return false;
        buf = arena_arr(d, nr, 1, &ok);
        if (!ok)
            return false;
        for (k = 0; k < nr; k++)
            if (!rd_valtype(d, &buf[k]))
                return false;
        t->nresults = nr;
        t->results = buf;
        m->ntypes = i + 1;
    }
    return true;
}

static bool sec_import(dec *d)
{
    iw_module *m = d->m;
    uint32_t n, i;
    bool ok = true;

    if (!rd_count(d, &n))
        return false;
    /* Each index space gets room for all imports; the sections that define
     * more entries later copy them into bigger arrays. */
    m->imports = arena_arr(d, n, sizeof *m->imports, &ok);
    if (ok)
        m->func_types = arena_arr(d, n, sizeof *m->func_types, &ok);
    if (ok)
        m->tables = arena_arr(d, n, sizeof *m->tables, &ok);
    if (ok)
        m->mems = arena_arr(d, n, sizeof *m->mems, &ok);
    if (ok)
        m->globals = arena_arr(d, n, sizeof *m->globals, &ok);
    if (!ok)
        return false;

    for (i = 0; i < n; i++) {
        iw__import *imp = &m->imports[i];
        size_t off;
        uint8_t kind;

        if (!rd_name(d, &imp->module, NULL) || !rd_name(d, &imp->name, NULL))
            return false;
        off = pos(d);
        if (!rd_u8(d, &kind))
            return false;
        imp->kind = kind;
        switch (kind) {
        case IW_EXTERN_FUNC: {
            uint32_t t;
            size_t toff = pos(d);
            if (!rd_u32(d, &t))
                return false;
            if (t >= m->ntypes)
                return fail_at(d, IW_INVALID, toff, "unknown type %u",
                               (unsigned)t);
            imp->index = m->nfuncs;
            m->func_types[m->nfuncs++] = t;
            m->nimported_funcs++;
            break;
        }
        case IW_EXTERN_TABLE:
            if (!rd_tabletype(d, &m->tables[m->ntables]))
                return false;
            imp->index = m->ntables++;
            m->nimported_tables++;
            break;
        case IW_EXTERN_MEMORY:
            if (!rd_memtype(d, &m->mems[m->nmems]))
                return false;
            if (m->nmems >= 1)
                return fail_at(d, IW_INVALID, off, "multiple memories");
            imp->index = m->nmems++;
            m->nimported_mems++;
            break;
        case IW_EXTERN_GLOBAL:
            if (!rd_globaltype(d, &m->globals[m->nglobals]))
                return false;
            imp->index = m->nglobals++;
            m->nimported_globals++;
            break;
        default:
            return fail_at(d, IW_MALFORMED, off, "malformed import kind 0x%02x",
                           kind);
        }
        m->nimports = i + 1;
    }
    return true;
}

/* Makes room for `more` defined entries after `nimp` imported ones: copies
 * the imported part of *arr (size elements) into a new arena array.
 * Returns the new array (NULL when the total is 0) or NULL with *ok false. */
static void *grow_space(dec *d, void *arr, uint32_t nimp, uint32_t more,
                        size_t size, bool *ok)
{
    void *n;
    if ((uint64_t)nimp + more > UINT32_MAX) {
        *ok = false;
        fail_at(d, IW_MALFORMED, pos(d), "too many entries");
        return NULL;
    }
    n = arena_arr(d, (size_t)nimp + more, size, ok);
    if (n && nimp)
        memcpy(n, arr, (size_t)nimp * size);
    return n;
}

static bool sec_function(dec *d)
{
    iw_module *m = d->m;
    uint32_t n, i;
    bool ok = true;
    uint32_t *ft;

    if (!rd_count(d, &n))
        return false;
    ft = grow_space(d, m->func_types, m->nfuncs, n, sizeof *ft, &ok);
    if (!ok)
        return false;
    m->func_types = ft;
    for (i = 0; i < n; i++) {
        size_t off = pos(d);
        uint32_t t;
        if (!rd_u32(d, &t))
            return false;
        if (t >= m->ntypes)
            return fail_at(d, IW_INVALID, off, "unknown type %u", (unsigned)t);
        m->func_types[m->nfuncs++] = t;
    }
    return true;
}

static bool sec_table(dec *d)
{
    iw_module *m = d->m;
    uint32_t n, i;
    bool ok = true;
    iw__tabletype *t;

    if (!rd_count(d, &n))
        return false;
    t = grow_space(d, m->tables, m->ntables, n, sizeof *t, &ok);
    if (!ok)
        return false;
    m->tables = t;
    for (i = 0; i < n; i++) {
        if (!rd_tabletype(d, &m->tables[m->ntables]))
            return false;
        m->ntables++;
    }
    return true;
}

static bool sec_memory(dec *d)
{
    iw_module *m = d->m;
    uint32_t n, i;
    bool ok = true;
    iw_limits *l;

    if (!rd_count(d, &n))
        return false;
    l = grow_space(d, m->mems, m->nmems, n, sizeof *l, &ok);
    if (!ok)
        return false;
    m->mems = l;
    for (i = 0; i < n; i++) {
        size_t off = pos(d);
        if (!rd_memtype(d, &m->mems[m->nmems]))
            return false;
        if (m->nmems >= 1)
            return fail_at(d, IW_INVALID, off, "multiple memories");
        m->nmems++;
    }
    return true;
}

static bool sec_global(dec *d)
{
    iw_module *m = d->m;
    uint32_t n, i;
    bool ok = true;
    iw__globaltype *g;

    if (!rd_count(d, &n))
        return false;
    g = grow_space(d, m->globals, m->nglobals, n, sizeof *g, &ok);
    if (!ok)
        return false;
    m->globals = g;
    for (i = 0; i < n; i++) {
        iw__globaltype *gt = &m->globals[m->nglobals];
        if (!rd_globaltype(d, gt) || !rd_const(d, gt->type, &gt->init))
            return false;
        m->nglobals++;
    }
    return true;
}

/* qsort comparator ordering exports by name (length first). */
static int export_cmp(const void *a, const void *b)
{
    const iw__export *x = *(const iw__export *const *)a;
    const iw__export *y = *(const iw__export *const *)b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->name, y->name, x->len);
}

/* Rejects duplicate export names (sorting a temporary array of pointers,
 * so hostile export counts stay O(n log n)). */
static bool check_export_names(dec *d, size_t sec_off)
{
    iw_module *m = d->m;
    const iw__export **v;
    uint32_t i;
    bool ok = true;

    if (m->nexports < 2)
        return true;
    v = iw__calloc(m->nexports, sizeof *v);
    if (!v)
        return nomem(d);
    for (i = 0; i < m->nexports; i++)
        v[i] = &m->exports[i];
    qsort(v, m->nexports, sizeof *v, export_cmp);
    for (i = 1; i < m->nexports && ok; i++)
        if (export_cmp(&v[i - 1], &v[i]) == 0)
            ok = fail_at(d, IW_INVALID, sec_off, "duplicate export name \"%s\"",
                         v[i]->name);
    iw__free(v);
    return ok;
}

static bool sec_export(dec *d)
{
    iw_module *m = d->m;
    uint32_t n, i;
    bool ok = true;
    size_t sec_off = pos(d);

    if (!rd_count(d, &n))
        return false;
    m->exports = arena_arr(d, n, sizeof *m->exports, &ok);
    if (!ok)
        return false;
    for (i = 0; i < n; i++) {
        iw__export *e = &m->exports[i];
        size_t off;
        uint8_t kind;
        uint32_t limit = 0;
        static const char *const what[4] = {"function", "table", "memory",
                                            "global"};

        if (!rd_name(d, &e->name, &e->len))
            return false;
        off = pos(d);
        if (!rd_u8(d, &kind))
            return false;
        if (kind > IW_EXTERN_GLOBAL)
            return fail_at(d, IW_MALFORMED, off, "malformed export kind 0x%02x",
                           kind);
        e->kind = kind;
        if (!rd_u32(d, &e->index))
            return false;
        switch (kind) {
        case IW_EXTERN_FUNC:
            limit = m->nfuncs;
            break;
        case IW_EXTERN_TABLE:
            limit = m->ntables;
            break;
        case IW_EXTERN_MEMORY:
            limit = m->nmems;
            break;
        default:
            limit = m->nglobals;
            break;
        }
        if (e->index >= limit)
            return fail_at(d, IW_INVALID, off, "unknown %s %u", what[kind],
                           (unsigned)e->index);
        if (kind == IW_EXTERN_FUNC)
            mark_declared(d, e->index);
        m->nexports = i + 1;
    }
    return check_export_names(d, sec_off);
}

static bool sec_start(dec *d)
{
    iw_module *m = d->m;
    size_t off = pos(d);
    uint32_t f;
    const iw_functype *t;

    if (!rd_u32(d, &f))
        return false;
    if (f >= m->nfuncs)
        return fail_at(d, IW_INVALID, off, "unknown function %u", (unsigned)f);
    t = &m->types[m->func_types[f]];
    if (t->nparams != 0 || t->nresults != 0)
        return fail_at(d, IW_INVALID, off,
                       "start function %u must have type [] -> []",
                       (unsigned)f);
    m->has_start = true;
    m->start = f;
    return true;
}

/* One element segment, in any of the eight encodings of WebAssembly 2.0:
 * flag bit 0 = passive or declarative, bit 1 = explicit table index (active)
 * or declarative, bit 2 = expressions instead of function indices. */
static bool rd_elem(dec *d, iw__elem *e)
{
    iw_module *m = d->m;
    size_t off = pos(d), toff = 0;
    uint32_t flags, n, i;
    bool ok = true;

    if (!rd_u32(d, &flags))
        return false;
    if (flags > 7)
        return fail_at(d, IW_MALFORMED, off,
                       "malformed elements segment kind %u", (unsigned)flags);
    e->elemtype = IW_FUNCREF;
    e->table = 0;
    if (!(flags & 1)) {
        e->mode = IW__SEG_ACTIVE;
        toff = pos(d);
        if ((flags & 2) && !rd_u32(d, &e->table))
            return false;
        if (e->table >= m->ntables)
            return fail_at(d, IW_INVALID, toff, "unknown table %u",
                           (unsigned)e->table);
        if (!rd_const(d, IW_I32, &e->offset))
            return false;
    } else {
        e->mode = (flags & 2) ? IW__SEG_DECLARATIVE : IW__SEG_PASSIVE;
    }
    if (flags & 3) {
        if (flags & 4) {
            if (!rd_reftype(d, &e->elemtype))
                return false;
        } else {
            size_t koff = pos(d);
            uint8_t kind;
            if (!rd_u8(d, &kind))
                return false;
            if (kind != 0x00)
                return fail_at(d, IW_MALFORMED, koff,
                               "malformed element kind 0x%02x", kind);
        }
    }
    if (!rd_count(d, &n))
        return false;
    e->items = arena_arr(d, n, sizeof *e->items, &ok);
    if (!ok)
        return false;
    for (i = 0; i < n; i++) {
        iw__constexpr *c = &e->items[i];
        if (flags & 4) {
            if (!rd_const(d, e->elemtype, c))
                return false;
        } else {
            size_t foff = pos(d);
            if (!rd_u32(d, &c->index))
                return false;
            if (c->index >= m->nfuncs)
                return fail_at(d, IW_INVALID, foff, "unknown function %u",
                               (unsigned)c->index);
            c->kind = IW__CONST_REF_FUNC;
            c->type = IW_FUNCREF;
            mark_declared(d, c->index);
        }
        e->count = i + 1;
    }
    if (e->mode == IW__SEG_ACTIVE &&
        m->tables[e->table].elemtype != e->elemtype)
        return fail_at(d, IW_INVALID, toff,
                       "type mismatch: element segment of %s for table %u "
                       "of %s",
                       iw_valtype_name(e->elemtype), (unsigned)e->table,
                       iw_valtype_name(m->tables[e->table].elemtype));
    return true;
}

static bool sec_element(dec *d)
{
    iw_module *m = d->m;
    uint32_t n, i;
    bool ok = true;

    if (!rd_count(d, &n))
        return false;
    m->elems = arena_arr(d, n, sizeof *m->elems, &ok);
    if (!ok)
        return false;
    for (i = 0; i < n; i++) {
        if (!rd_elem(d, &m->elems[i]))
            return false;
        m->nelems = i + 1;
    }
    return true;
}

static bool sec_datacount(dec *d)
{
    if (!rd_u32(d, &d->m->datacount))
        return false;
    d->m->has_datacount = true;
    return true;
}

/* Code section: hands each body, as a reader covering exactly the body, to
 * the validator/translator (validate.c).  Returns its status. */
static iw_status sec_code(dec *d)
{
    iw_module *m = d->m;
    uint32_t n, i, ndefined = m->nfuncs - m->nimported_funcs;
    size_t off = pos(d);
    bool ok = true;

    if (!rd_count(d, &n))
        return d->st;
    if (n != ndefined) {
        fail_at(d, IW_MALFORMED, off,
                "function and code section have inconsistent lengths (%u "
                "functions, %u bodies)",
                (unsigned)ndefined, (unsigned)n);
        return d->st;
    }
    m->codes = arena_arr(d, n, sizeof *m->codes, &ok);
    if (!ok)
        return d->st;
    for (i = 0; i < n; i++) {
        iw__reader sub;
        uint32_t size;
        iw_status st;

        off = pos(d);
        if (!rd_u32(d, &size))
            return d->st;
        if (size > remaining(d)) {
            fail_at(d, IW_MALFORMED, off,
                    "length out of bounds (body of "
                    "function %u)",
                    (unsigned)(m->nimported_funcs + i));
            return d->st;
        }
        sub.base = d->r.base;
        sub.p = d->r.p;
        sub.end = d->r.p + size;
        sub.err = d->r.err;
        sub.errlen = d->r.errlen;
        m->codes[i].body_offset = (uint32_t)pos(d);
        st = iw__translate_func(m, i, &sub);
        if (st != IW_OK)
            return st;
        /* The translator consumes the whole body; a reader left in the
         * middle means bytes after the final `end`. */
        if (sub.p != d->r.p && sub.p != sub.end) {
            fail_at(d, IW_MALFORMED, iw__reader_offset(&sub),
                    "section size mismatch (function %u)",
                    (unsigned)(m->nimported_funcs + i));
            return d->st;
        }
        d->r.p += size;
    }
    return IW_OK;
}

static bool sec_data(dec *d)
{
    iw_module *m = d->m;
    uint32_t n, i;
    size_t off = pos(d);
    bool ok = true;

    if (!rd_count(d, &n))
        return false;
    if (m->has_datacount && n != m->datacount)
        return fail_at(d, IW_MALFORMED, off,
                       "data count and data section have inconsistent lengths");
    m->datas = arena_arr(d, n, sizeof *m->datas, &ok);
    if (!ok)
        return false;
    for (i = 0; i < n; i++) {
        iw__data *s = &m->datas[i];
        uint32_t flags, len;
        uint8_t *bytes;

        off = pos(d);
        if (!rd_u32(d, &flags))
            return false;
        if (flags > 2)
            return fail_at(d, IW_MALFORMED, off,
                           "malformed data segment kind %u", (unsigned)flags);
        s->mode = flags == 1 ? IW__SEG_PASSIVE : IW__SEG_ACTIVE;
        if (flags != 1) {
            size_t moff = pos(d);
            if (flags == 2 && !rd_u32(d, &s->mem))
                return false;
            if (s->mem >= m->nmems)
                return fail_at(d, IW_INVALID, moff, "unknown memory %u",
                               (unsigned)s->mem);
            if (!rd_const(d, IW_I32, &s->offset))
                return false;
        }
        off = pos(d);
        if (!rd_u32(d, &len))
            return false;
        if (len > remaining(d))
            return fail_at(d, IW_MALFORMED, off,
                           "unexpected end of section or function (data "
                           "segment %u: %u bytes declared)",
                           (unsigned)i, (unsigned)len);
        bytes = arena_arr(d, len, 1, &ok);
        if (!ok)
            return false;
        if (len)
            memcpy(bytes, d->r.p, len);
        d->r.p += len;
        s->len = len;
        s->bytes = bytes;
        m->ndatas = i + 1;
    }
    return true;
}

/* Custom section: its name must be well-formed and fit in the section; the
 * payload is skipped, except that the "name" section is remembered for
 * parse_names() at the end. */
static bool sec_custom(dec *d, const uint8_t *sec_end)
{
    char *name;
    uint32_t len;

    if (!rd_name(d, &name, &len))
        return false;
    if (d->r.p > sec_end)
        return fail_at(d, IW_MALFORMED, (size_t)(sec_end - d->r.base),
                       "unexpected end of section or function (custom "
                       "section name)");
    if (d->last_sec) {
        d->last_sec->name = name;
        d->last_sec->name_len = len;
    }
    if (len == 4 && memcmp(name, "name", 4) == 0 && !d->names) {
        d->names = d->r.p;
        d->names_end = sec_end;
    }
    d->r.p = sec_end;
    return true;
}

/* Parses the function names (subsection 1) of the "name" section into
 * m->func_names.  Lenient: a malformed payload just ends the parse (custom
 * sections never make a module invalid).  Returns false only when out of
 * memory. */
static bool parse_names(dec *d)
{
    iw_module *m = d->m;
    iw__reader saved = d->r;
    bool ok = true;

    d->r.p = d->names;
    d->r.end = d->names_end;
    d->r.err = NULL;
    d->r.errlen = 0;
    while (ok && d->r.p < d->r.end) {
        uint8_t id;
        uint32_t size, n, i;
        const uint8_t *sub_end;

        if (!rd_u8(d, &id) || !rd_u32(d, &size) || size > remaining(d))
            break;
        sub_end = d->r.p + size;
        if (id != 1) {
            d->r.p = sub_end;
            continue;
        }
        d->r.end = sub_end;
        if (!rd_count(d, &n))
            break;
        for (i = 0; i < n; i++) {
            uint32_t f, len;
            const uint8_t *s;
            char *copy;

            if (!rd_u32(d, &f) || !rd_u32(d, &len) || len > remaining(d))
                break;
            s = d->r.p;
            d->r.p += len;
            if (f >= m->nfuncs || !utf8_valid(s, len))
                continue;
            if (!m->func_names) {
                m->func_names = iw__arena_array(&m->arena, m->nfuncs,
                                                sizeof *m->func_names);
                if (!m->func_names) {
                    ok = false;
                    break;
                }
            }
            if (m->func_names[f])
                continue;
            copy = iw__arena_alloc(&m->arena, (size_t)len + 1);
            if (!copy) {
                ok = false;
                break;
            }
            memcpy(copy, s, len);
            copy[len] = '\0';
            m->func_names[f] = copy;
        }
        break; /* only one function-name subsection is allowed */
    }
    d->r = saved;
    if (!ok)
        return nomem(d);
    return true;
}

/* Completes the function index space once every section that adds
 * functions has been read: allocates func_declared. */
static bool finish_funcs(dec *d)
{
    bool ok = true;
    if (d->funcs_final)
        return true;
    d->funcs_final = true;
    d->m->func_declared = arena_arr(d, d->m->nfuncs, 1, &ok);
    return ok;
}

/* Decodes the whole module after the header.  Returns the status. */
static iw_status decode_sections(dec *d)
{
    iw_module *m = d->m;
    const uint8_t *file_end = d->r.end;
    int last_rank = 0;
    bool seen_code = false, seen_data = false;

    while (d->r.p < file_end) {
        size_t sec_off = pos(d);
        const uint8_t *sec_end;
        uint8_t id;
        uint32_t size;
        bool ok;

        cur_section = NULL;
        if (!rd_u8(d, &id))
            return d->st;
        if (id >= SEC_COUNT) {
            fail_at(d, IW_MALFORMED, sec_off, "malformed section id %u",
                    (unsigned)id);
            return d->st;
        }
        if (!rd_u32(d, &size))
            return d->st;
        if (size > remaining(d)) {
            fail_at(d, IW_MALFORMED, sec_off,
                    "length out of bounds (%s section size %u)",
                    section_names[id], (unsigned)size);
            return d->st;
        }
        sec_end = d->r.p + size;
        cur_section = section_names[id];
        {
            iw__section *sec = iw__arena_alloc(&m->arena, sizeof *sec);
            if (!sec) {
                nomem(d);
                return d->st;
            }
            sec->id = id;
            sec->offset = (uint32_t)pos(d);
            sec->size = size;
            if (d->last_sec)
                d->last_sec->next = sec;
            else
                m->sections = sec;
            d->last_sec = sec;
            m->nsections++;
        }
        if (id == SEC_CUSTOM) {
            if (!sec_custom(d, sec_end))
                return d->st;
            continue;
        }
        if (section_rank[id] <= last_rank) {
            fail_at(d, IW_MALFORMED, sec_off,
                    "unexpected content after last section (duplicate or "
                    "out-of-order %s section)",
                    section_names[id]);
            return d->st;
        }
        last_rank = section_rank[id];
        if (section_rank[id] > section_rank[SEC_FUNCTION] && !finish_funcs(d))
            return d->st;

        switch (id) {
        case SEC_TYPE:
            ok = sec_type(d);
            break;
        case SEC_IMPORT:
            ok = sec_import(d);
            break;
        case SEC_FUNCTION:
            ok = sec_function(d);
            break;
        case SEC_TABLE:
            ok = sec_table(d);
            break;
        case SEC_MEMORY:
            ok = sec_memory(d);
            break;
        case SEC_GLOBAL:
            ok = sec_global(d);
            break;
        case SEC_EXPORT:
            ok = sec_export(d);
            break;
        case SEC_START:
            ok = sec_start(d);
            break;
        case SEC_ELEMENT:
            ok = sec_element(d);
            break;
        case SEC_DATACOUNT:
            ok = sec_datacount(d);
            break;
        case SEC_CODE: {
            iw_status st = sec_code(d);
            if (st != IW_OK)
                return st;
            seen_code = true;
            ok = true;
            break;
        }
        default:
            ok = sec_data(d);
            seen_data = true;
            break;
        }
        if (!ok)
            return d->st;
        if (d->r.p != sec_end) {
            fail_at(d, IW_MALFORMED, sec_off,
                    "section size mismatch (declared %u bytes, used %td)",
                    (unsigned)size, d->r.p - (sec_end - size));
            return d->st;
        }
    }
    cur_section = NULL;
    if (!finish_funcs(d))
        return d->st;
    if (!seen_code && m->nfuncs != m->nimported_funcs) {
        fail_at(d, IW_MALFORMED, pos(d),
                "function and code section have inconsistent lengths (code "
                "section missing)");
        return d->st;
    }
    if (m->has_datacount && !seen_data && m->datacount != 0) {
        fail_at(d, IW_MALFORMED, pos(d),
                "data count and data section have inconsistent lengths (data "
                "section missing)");
        return d->st;
    }
    if (d->names && !parse_names(d))
        return d->st;
    return IW_OK;
}

/* ------------------------------------------------------------------------ */
/* Public API.                                                              */

iw_status iw_module_load(const uint8_t *bytes, size_t len, iw_module **out,
                         char *err, size_t errlen)
{
    static const uint8_t magic[4] = {0x00, 0x61, 0x73, 0x6D};
    static const uint8_t version[4] = {0x01, 0x00, 0x00, 0x00};
    iw_module *m;
    dec d;
    iw_status st;

    if (err && errlen)
        err[0] = '\0';
    if (!out || (!bytes && len)) {
        iw__errf(err, errlen, "invalid argument");
        return IW_ARG;
    }
    *out = NULL;
    m = iw__calloc(1, sizeof *m);
    if (!m) {
        iw__errf(err, errlen, "out of memory");
        return IW_NOMEM;
    }
    memset(&d, 0, sizeof d);
    d.m = m;
    d.st = IW_MALFORMED;
    d.r.base = bytes;
    d.r.p = bytes;
    d.r.end = bytes + len;
    d.r.err = err;
    d.r.errlen = errlen;
    cur_section = NULL;

    if (len < 4) {
        rd_eof(&d.r);
        st = IW_MALFORMED;
    } else if (memcmp(bytes, magic, 4) != 0) {
        fail_at(&d, IW_MALFORMED, 0, "magic header not detected");
        st = IW_MALFORMED;
    } else if (len < 8) {
        d.r.p = bytes + len;
        rd_eof(&d.r);
        st = IW_MALFORMED;
    } else if (memcmp(bytes + 4, version, 4) != 0) {
        fail_at(&d, IW_MALFORMED, 4, "unknown binary version");
        st = IW_MALFORMED;
    } else {
        d.r.p = bytes + 8;
        st = decode_sections(&d);
    }
    cur_section = NULL;
    if (st != IW_OK) {
        iw_module_free(m);
        return st;
    }
    *out = m;
    return IW_OK;
}

void iw_module_free(iw_module *m)
{
    if (!m)
        return;
    iw__arena_free(&m->arena);
    iw__free(m);
}

uint32_t iw_module_import_count(const iw_module *m)
{
    return m ? m->nimports : 0;
}

uint32_t iw_module_export_count(const iw_module *m)
{
    return m ? m->nexports : 0;
}

uint32_t iw_module_func_count(const iw_module *m)
{
    return m ? m->nfuncs : 0;
}

const char *iw_module_func_name(const iw_module *m, uint32_t idx)
{
    if (!m || !m->func_names || idx >= m->nfuncs)
        return NULL;
    return m->func_names[idx];
}

/* Fills the type details of entity `idx` of kind `kind` into *out. */
static void describe(const iw_module *m, uint8_t kind, uint32_t idx,
                     iw_extern_desc *out)
{
    out->kind = (iw_extern_kind)kind;
    switch (kind) {
    case IW_EXTERN_FUNC:
        if (idx < m->nfuncs && m->func_types[idx] < m->ntypes)
            out->func = m->types[m->func_types[idx]];
        break;
    case IW_EXTERN_TABLE:
        if (idx < m->ntables) {
            out->elemtype = m->tables[idx].elemtype;
            out->limits = m->tables[idx].lim;
        }
        break;
    case IW_EXTERN_MEMORY:
        if (idx < m->nmems)
            out->limits = m->mems[idx];
        break;
    default:
        if (idx < m->nglobals) {
            out->valtype = m->globals[idx].type;
            out->mut = m->globals[idx].mut;
        }
        break;
    }
}

iw_status iw_module_import(const iw_module *m, uint32_t i, iw_extern_desc *out)
{
    if (!m || !out || i >= m->nimports)
        return IW_ARG;
    memset(out, 0, sizeof *out);
    out->module = m->imports[i].module;
    out->name = m->imports[i].name;
    out->name_len = strlen(out->name);
    out->index = m->imports[i].index;
    describe(m, m->imports[i].kind, m->imports[i].index, out);
    return IW_OK;
}

iw_status iw_module_export(const iw_module *m, uint32_t i, iw_extern_desc *out)
{
    if (!m || !out || i >= m->nexports)
        return IW_ARG;
    memset(out, 0, sizeof *out);
    out->module = NULL;
    out->name = m->exports[i].name;
    out->name_len = m->exports[i].len;
    out->index = m->exports[i].index;
    describe(m, m->exports[i].kind, m->exports[i].index, out);
    return IW_OK;
}

void iw_module_counts_get(const iw_module *m, iw_module_counts *out)
{
    memset(out, 0, sizeof *out);
    if (!m)
        return;
    out->types = m->ntypes;
    out->funcs = m->nfuncs;
    out->tables = m->ntables;
    out->memories = m->nmems;
    out->globals = m->nglobals;
    out->imported_funcs = m->nimported_funcs;
    out->imported_tables = m->nimported_tables;
    out->imported_memories = m->nimported_mems;
    out->imported_globals = m->nimported_globals;
    out->elems = m->nelems;
    out->datas = m->ndatas;
    out->has_start = m->has_start;
    out->start = m->start;
}

iw_status iw_module_memory_limits(const iw_module *m, uint32_t idx,
                                  iw_limits *out)
{
    if (!m || !out || idx >= m->nmems)
        return IW_ARG;
    *out = m->mems[idx];
    return IW_OK;
}

uint32_t iw_module_section_count(const iw_module *m)
{
    return m ? m->nsections : 0;
}

iw_status iw_module_section(const iw_module *m, uint32_t i,
                            iw_section_desc *out)
{
    const iw__section *sec;
    if (!m || !out || i >= m->nsections)
        return IW_ARG;
    for (sec = m->sections; i > 0; i--)
        sec = sec->next;
    out->id = sec->id;
    out->offset = sec->offset;
    out->size = sec->size;
    out->name = sec->name;
    out->name_len = sec->name_len;
    return IW_OK;
}
