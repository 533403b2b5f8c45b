/*
 * rt_ring.c - the runtime's lock-free building blocks: the bounded MPSC
 * ring between stage instances, the per-worker message pools (no malloc per
 * message once warm) and the log-linear latency histograms.
 */
#include <stdlib.h>
#include <string.h>

#include "rt_int.h"

/* ------------------------------------------------------------------------ */
/* Ring.                                                                    */

bool fl__ring_init(fl__ring *r, size_t cap)
{
    memset(r, 0, sizeof *r);
    if (cap == 0)
        cap = 1;
    r->cells = malloc(cap * sizeof *r->cells);
    if (!r->cells)
        return false;
    r->cap = cap;
    for (size_t i = 0; i < cap; i++) {
        atomic_init(&r->cells[i].seq, i);
        r->cells[i].data = NULL;
    }
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    return true;
}

void fl__ring_fini(fl__ring *r)
{
    free(r->cells);
    r->cells = NULL;
    r->cap = 0;
}

/*
 * Vyukov's bounded queue: a producer claims position `pos` with a CAS on
 * head when the cell's sequence equals pos (free for this turn), writes the
 * element and publishes it by storing pos+1 (release).  A cell whose
 * sequence is behind pos is still full from the previous lap: the ring is
 * full.  The sequence arithmetic works for any capacity.
 */
bool fl__ring_push(fl__ring *r, void *p)
{
    size_t pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (;;) {
        fl__ring_cell *c = &r->cells[pos % r->cap];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t diff = (intptr_t)seq - (intptr_t)pos;
        if (diff == 0) {
            if (atomic_compare_exchange_weak_explicit(
                    &r->head, &pos, pos + 1, memory_order_relaxed,
                    memory_order_relaxed)) {
                c->data = p;
                atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
                return true;
            }
        } else if (diff < 0) {
            return false; /* full */
        } else {
            pos = atomic_load_explicit(&r->head, memory_order_relaxed);
        }
    }
}

/* Single consumer: no CAS needed on tail. */
void *fl__ring_pop(fl__ring *r)
{
    size_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    fl__ring_cell *c;
    void *p;
    if (!r->cells)
        return NULL;
    c = &r->cells[pos % r->cap];
    if (atomic_load_explicit(&c->seq, memory_order_acquire) != pos + 1)
        return NULL; /* empty (or the producer has not published yet) */
    p = c->data;
    atomic_store_explicit(&r->tail, pos + 1, memory_order_relaxed);
    atomic_store_explicit(&c->seq, pos + r->cap, memory_order_release);
    return p;
}

size_t fl__ring_depth(const fl__ring *r)
{
    size_t h, t;
    if (!r->cells)
        return 0;
    h = atomic_load_explicit(&((fl__ring *)r)->head, memory_order_relaxed);
    t = atomic_load_explicit(&((fl__ring *)r)->tail, memory_order_relaxed);
    return h > t ? h - t : 0;
}

/* ------------------------------------------------------------------------ */
/* Message pools.                                                           */

static const uint32_t class_cap[FL__NCLASSES] = {FL__CLASS0, FL__CLASS1,
                                                 FL__CLASS2};
static const size_t class_max[FL__NCLASSES] = {
    FL__POOL_MAX_SMALL, FL__POOL_MAX_SMALL / 16, FL__POOL_MAX_LARGE};

/*
 * Takes a message from the owner's free list, refilling it from the remote
 * stack with one exchange when empty, and only then allocates a new one
 * (until the class's bound).  Returns NULL when `len` is too large, the
 * class is exhausted or malloc fails.
 */
fl__msg *fl__msg_alloc(fl__pool *pools, uint16_t owner, size_t len)
{
    unsigned cls;
    fl__pool *p;
    fl__msg *m;

    if (len <= FL__CLASS0)
        cls = 0;
    else if (len <= FL__CLASS1)
        cls = 1;
    else if (len <= FL__CLASS2)
        cls = 2;
    else
        return NULL;
    p = &pools[cls];
    m = p->free_;
    if (!m && atomic_load_explicit(&p->remote, memory_order_relaxed))
        m = atomic_exchange_explicit(&p->remote, NULL, memory_order_acquire);
    if (m) {
        p->free_ = m->next;
    } else {
        if (p->count >= class_max[cls])
            return NULL;
        m = malloc(sizeof *m + class_cap[cls]);
        if (!m)
            return NULL;
        m->all_next = p->all;
        p->all = m;
        p->count++;
    }
    m->next = NULL;
    atomic_init(&m->refs, 1);
    atomic_init(&m->credit_holders, 0);
    m->owner = owner;
    m->cls = (uint8_t)cls;
    m->kind = FL__MSG_DATA;
    m->topic_len = 0;
    m->topic[0] = '\0';
    m->origin = FL__NO_ORIGIN;
    m->src = -1;
    m->credit_inst = UINT32_MAX;
    m->seq = 0;
    m->ts = 0;
    m->t_in = 0;
    m->len = 0;
    return m;
}

static void remote_push_chain(fl__pool *p, fl__msg *head, fl__msg *tail);

/* Owner: straight onto the free list; anyone else: a CAS push onto the
 * owner's remote stack (pushes only, so no ABA). */
void fl__msg_recycle(fl__pool *pools, int32_t self, fl__msg *m)
{
    fl__pool *p = &pools[(size_t)m->owner * FL__NCLASSES + m->cls];
    if (self == (int32_t)m->owner) {
        m->next = p->free_;
        p->free_ = m;
        return;
    }
    remote_push_chain(p, m, m);
}

/* Pushes the chain head..tail onto p's remote stack with one CAS. */
static void remote_push_chain(fl__pool *p, fl__msg *head, fl__msg *tail)
{
    fl__msg *top = atomic_load_explicit(&p->remote, memory_order_relaxed);
    do {
        tail->next = top;
    } while (!atomic_compare_exchange_weak_explicit(
        &p->remote, &top, head, memory_order_release, memory_order_relaxed));
}

void fl__msg_recycle_batched(fl__pool *pools, fl__rbatch *batches,
                             int32_t self, fl__msg *m)
{
    size_t k = (size_t)m->owner * FL__NCLASSES + m->cls;
    fl__rbatch *b;
    if (self < 0 || self == (int32_t)m->owner) {
        fl__msg_recycle(pools, self, m);
        return;
    }
    b = &batches[k];
    m->next = b->head;
    b->head = m;
    if (!b->tail)
        b->tail = m;
    if (++b->n >= FL__RBATCH_MAX) {
        remote_push_chain(&pools[k], b->head, b->tail);
        b->head = b->tail = NULL;
        b->n = 0;
    }
}

void fl__rbatch_flush(fl__pool *pools, fl__rbatch *batches, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        fl__rbatch *b = &batches[k];
        if (!b->n)
            continue;
        remote_push_chain(&pools[k], b->head, b->tail);
        b->head = b->tail = NULL;
        b->n = 0;
    }
}

void fl__pool_fini(fl__pool *p)
{
    fl__msg *m = p->all;
    while (m) {
        fl__msg *n = m->all_next;
        free(m);
        m = n;
    }
    p->all = NULL;
    p->free_ = NULL;
    atomic_store(&p->remote, NULL);
    p->count = 0;
}

/* ------------------------------------------------------------------------ */
/* Histograms.                                                              */

/* Bucket of v: exact below 8; else 8 sub-buckets per octave. */
static unsigned hist_index(uint64_t v)
{
    unsigned oct, sub;
    if (v < 8)
        return (unsigned)v;
#if defined(__GNUC__) || defined(__clang__)
    oct = 63u - (unsigned)__builtin_clzll(v);
#else
    oct = 0;
    while ((v >> oct) > 1)
        oct++;
#endif
    sub = (unsigned)(v >> (oct - 3)) & 7u;
    return (oct - 2) * 8 + sub;
}

/* Midpoint of bucket i in ns. */
static double hist_mid(unsigned i)
{
    unsigned oct, sub;
    double low, width;
    if (i < 8)
        return (double)i;
    oct = i / 8 + 2;
    sub = i % 8;
    low = (double)(8 + sub) * (double)(1ull << (oct - 3));
    width = (double)(1ull << (oct - 3));
    return low + width / 2;
}

void fl__hist_add(fl__hist *h, uint64_t ns)
{
    unsigned i = hist_index(ns);
    if (i >= FL__HIST_N)
        i = FL__HIST_N - 1;
    /* Single writer: a relaxed load+store is enough and cheaper than an
     * atomic increment. */
    atomic_store_explicit(
        &h->b[i], atomic_load_explicit(&h->b[i], memory_order_relaxed) + 1,
        memory_order_relaxed);
}

void fl__hist_merge(uint64_t *acc, const fl__hist *h)
{
    for (unsigned i = 0; i < FL__HIST_N; i++)
        acc[i] += atomic_load_explicit(&((fl__hist *)h)->b[i],
                                       memory_order_relaxed);
}

double fl__hist_quantile_us(const uint64_t *acc, double q)
{
    uint64_t total = 0, want, run = 0;
    for (unsigned i = 0; i < FL__HIST_N; i++)
        total += acc[i];
    if (total == 0)
        return 0;
    want = (uint64_t)(q * (double)total);
    if (want >= total)
        want = total - 1;
    for (unsigned i = 0; i < FL__HIST_N; i++) {
        run += acc[i];
        if (run > want)
            return hist_mid(i) / 1000.0;
    }
    return hist_mid(FL__HIST_N - 1) / 1000.0;
}
