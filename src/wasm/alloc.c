/*
 * alloc.c - the engine's allocation wrappers (with the fail-the-Nth-allocation
 * test hook), the bump arena used for module data, and iw__errf.
 */
#if defined(__linux__)
#define _GNU_SOURCE /* mmap's MAP_ANONYMOUS, mremap */
#elif defined(__unix__) || defined(__APPLE__)
#define _DEFAULT_SOURCE
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define IW_HAVE_MMAP 1
#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON
#endif
#endif

#include "wasm_int.h"

/* ------------------------------------------------------------------------ */
/* Failure injection.                                                       */

/* Allocations left before the one that fails; 0 = injection disabled. */
static uint64_t fail_countdown;

void iw_debug_fail_alloc_after(uint64_t n)
{
    fail_countdown = n;
}

/* Counts one allocation attempt; returns true when this one must fail.  The
 * hook is one-shot: after the failing call it disables itself. */
static int should_fail(void)
{
    if (fail_countdown == 0)
        return 0;
    fail_countdown--;
    return fail_countdown == 0;
}

/* ------------------------------------------------------------------------ */
/* Heap wrappers.  A request of 0 bytes allocates 1 byte so that NULL always
 * means failure. */

void *iw__malloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *iw__calloc(size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    if (should_fail())
        return NULL;
    if (count == 0 || size == 0)
        return calloc(1, 1);
    return calloc(count, size);
}

/* realloc(p, 0) frees p and returns NULL (not counted as an allocation);
 * realloc(NULL, n) behaves like iw__malloc(n).  On failure p is untouched. */
void *iw__realloc(void *p, size_t n)
{
    if (n == 0) {
        free(p);
        return NULL;
    }
    if (should_fail())
        return NULL;
    return realloc(p, n);
}

void iw__free(void *p)
{
    free(p);
}

/* ------------------------------------------------------------------------ */
/* Large zeroed blocks: a store's value stack and frames, linear memories.
 *
 * From mmap where there is one, so that a block's pages are zero without
 * being written and are touched only when used.  calloc from a heap that
 * was used before must clear every byte: for a store's 2 MiB value stack
 * that was ~500 page faults when a node instantiated a new version of a
 * stage (~10 ms of a live update on a VM with dear page faults), although
 * a stage uses a few KiB of it.  Below IW_BIG bytes, or without mmap,
 * calloc/realloc/free.  The caller passes the block's size to
 * iw__zrealloc and iw__zfree (it keeps it anyway). */

#define IW_BIG ((size_t)64 * 1024)

#ifdef IW_HAVE_MMAP
static void *big_map(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}
#endif

void *iw__zalloc(size_t n)
{
#ifdef IW_HAVE_MMAP
    if (n >= IW_BIG) {
        if (should_fail())
            return NULL;
        return big_map(n);
    }
#endif
    return iw__calloc(1, n);
}

void iw__zfree(void *p, size_t n)
{
    if (!p)
        return;
#ifdef IW_HAVE_MMAP
    if (n >= IW_BIG) {
        munmap(p, n);
        return;
    }
#endif
    (void)n;
    free(p);
}

/* Grows (or shrinks) a block from iw__zalloc of `old` bytes to `n`, the
 * new bytes zero.  NULL on failure (p untouched); n must not be 0. */
void *iw__zrealloc(void *p, size_t old, size_t n)
{
#ifdef IW_HAVE_MMAP
    if (n >= IW_BIG || old >= IW_BIG) {
        void *q;
        if (should_fail())
            return NULL;
#ifdef MREMAP_MAYMOVE
        if (old >= IW_BIG && n >= IW_BIG) {
            q = mremap(p, old, n, MREMAP_MAYMOVE);
            return q == MAP_FAILED ? NULL : q;
        }
#endif
        q = n >= IW_BIG ? big_map(n) : calloc(1, n);
        if (!q)
            return NULL;
        memcpy(q, p, old < n ? old : n);
        iw__zfree(p, old);
        return q;
    }
#endif
    {
        unsigned char *q = iw__realloc(p, n);
        if (q && n > old)
            memset(q + old, 0, n - old);
        return q;
    }
}

/* ------------------------------------------------------------------------ */
/* Bump arena.                                                              */

#define ARENA_CHUNK_SIZE ((size_t)16 * 1024)
#define ARENA_ALIGN ((size_t)8)

struct iw__arena_chunk {
    iw__arena_chunk *next;
    size_t cap;  /* usable bytes after the header */
    size_t used; /* bytes handed out */
};

/* Offset of the usable area: the header rounded up to 16 bytes (malloc
 * returns memory aligned for any type, so the area stays 8-aligned). */
#define ARENA_HDR ((sizeof(iw__arena_chunk) + 15u) & ~(size_t)15u)

static uint8_t *chunk_data(iw__arena_chunk *c)
{
    return (uint8_t *)c + ARENA_HDR;
}

/* Allocates a zeroed chunk with `cap` usable bytes, or NULL. */
static iw__arena_chunk *chunk_new(size_t cap)
{
    iw__arena_chunk *c;
    if (cap > SIZE_MAX - ARENA_HDR)
        return NULL;
    if (should_fail())
        return NULL;
    c = calloc(1, ARENA_HDR + cap);
    if (!c)
        return NULL;
    c->cap = cap;
    c->used = 0;
    c->next = NULL;
    return c;
}

/* Returns n zeroed bytes aligned to 8 that live until iw__arena_free(), or
 * NULL when out of memory.  Requests larger than a quarter chunk get their
 * own chunk, linked behind the current one so its free space stays usable. */
void *iw__arena_alloc(iw__arena *a, size_t n)
{
    iw__arena_chunk *c;
    void *p;

    if (!a)
        return NULL;
    if (n == 0)
        n = ARENA_ALIGN;
    if (n > SIZE_MAX - (ARENA_ALIGN - 1))
        return NULL;
    n = (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);

    c = a->head;
    if (c && c->cap - c->used >= n) {
        p = chunk_data(c) + c->used;
        c->used += n;
        return p;
    }
    if (n > ARENA_CHUNK_SIZE / 4) {
        c = chunk_new(n);
        if (!c)
            return NULL;
        c->used = n;
        if (a->head) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            a->head = c;
        }
        return chunk_data(c);
    }
    c = chunk_new(ARENA_CHUNK_SIZE);
    if (!c)
        return NULL;
    c->next = a->head;
    a->head = c;
    c->used = n;
    return chunk_data(c);
}

void *iw__arena_array(iw__arena *a, size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size)
        return NULL;
    return iw__arena_alloc(a, count * size);
}

/* Frees every chunk; the arena is empty (and reusable) afterwards. */
void iw__arena_free(iw__arena *a)
{
    iw__arena_chunk *c, *next;
    if (!a)
        return;
    for (c = a->head; c; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
}

/* ------------------------------------------------------------------------ */

void iw__errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    if (!fmt) {
        err[0] = '\0';
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
