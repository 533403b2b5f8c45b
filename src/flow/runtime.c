/*
 * runtime.c - runs a checked flow graph: stage instances pinned to worker
 * threads, bounded lock-free queues between them, source schedules in the
 * push/pull/demand modes, actuations routed back to the originating device,
 * supervision (dead letters, restarts, restart intensity) and metrics.
 * docs/RUNTIME.md describes the design and each worker's loop phases.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rt_int.h"

#define RT_ERRLEN 256
#define RT_CATCHUP_NS 2000000ull /* source ticks caught up when late (2 ms) */
#define RT_BATCH 64          /* inputs per instance per pass */
#define RT_ACT_BATCH 32      /* actuations per instance per pass */
#define RT_ACTQ_MAX 256u     /* actuation queues hold at most this many */
#define RT_IDLE_NS 100000000ull    /* longest sleep without a timer (100 ms) */
#define RT_BLOCKED_NS 200000ull    /* sleep while an outbox waits (200 us) */
#define RT_RETRY_NS 1000000ull     /* demand source that had nothing: retry */
#define RT_MAX_RESTART_RING 1024u
#define RT_DEFAULT_CREDITS 16u
/* Idle polling before sleeping.  Off by default: measured on the 2-core
 * machine, a 50 us poll took CPU from the other worker and the sources and
 * raised the push pipeline's p99 at 250k msg/s from ~0.2-0.4 ms to
 * 1.4-3.5 ms, and lowered demand throughput too.  Build with
 * -DRT_SPIN_NS=N to try it on machines with spare cores. */
#ifndef RT_SPIN_NS
#define RT_SPIN_NS 0ull
#endif
#define RT_REAL_REFRESH_NS 100000000ull /* wall-clock offset refresh (100 ms) */
#define RT_CRED_SLOTS 8u           /* source instances with credits pending */

#define HOP_NONE (-1)
#define HOP_SELF (-2)

enum { PH_IDLE = 0, PH_INIT, PH_PROCESS, PH_PRODUCE, PH_ACT };

typedef struct rt_worker rt_worker;
typedef struct rt_stage rt_stage;

/* Counters of one stage on one worker: written by that worker only. */
typedef struct rt_stat {
    _Atomic uint64_t in, out, act, dropped, errors, traps, restarts;
    _Atomic uint64_t delivered, produced, act_delivered;
    fl__hist proc; /* processing latency */
    fl__hist e2e;  /* source emit -> done, terminal stages only */
} rt_stat;

typedef struct rt_out {
    fl__msg *m;
    uint32_t next; /* next downstream stage (index in rt_stage.down) */
} rt_out;

/* One stage instance: owned by the runtime, run by exactly one worker. */
typedef struct rt_inst {
    fl_runtime *rt;
    rt_stage *st;
    uint32_t idx;         /* index within its stage */
    uint32_t gid;         /* index in fl_runtime.all */
    int32_t device;       /* device index, or -1 */
    rt_worker *w;         /* the worker it is pinned to */
    fl__inst *host;       /* the stage host's instance; NULL when dead */
    fl__ring inq;         /* input messages (cells == NULL: no upstream) */
    fl__ring actq;        /* actuations (cells == NULL: none can arrive) */
    /* The call in progress. */
    uint8_t phase;        /* PH_* */
    bool cur_ok;          /* the current process call succeeded */
    bool finish_pending;  /* cur is done but its outbox is not flushed */
    fl__msg *cur;         /* message being processed (a reference), or NULL */
    uint32_t call_emits;  /* emits during the current call */
    /* The outbox: emitted messages not yet in every downstream queue. */
    rt_out *out;
    uint32_t out_cap, nout, outpos;
    _Atomic uint32_t busy; /* outbox or finish pending (read by stop) */
    /* Source state (source >= 0). */
    int32_t source;       /* index in g->sources, or -1 */
    uint8_t mode, policy;
    uint64_t period;      /* ns between ticks (scaled), 0: none */
    uint64_t next_due;    /* monotonic ns of the next tick */
    uint32_t heap_pos;    /* position in the worker's timer heap, or UINT32_MAX */
    _Atomic int32_t credits;
    int32_t credits_init;
    _Atomic uint32_t inflight_max;
    fl__msg **dbuf;       /* demand: device-side buffer (ring) */
    uint32_t dcap, dhead, dcount;
    uint64_t retry_at;    /* demand without schedule: next produce attempt */
    bool link_credit;     /* node mode, demand feeding a remote stage: the
                             credits come from the link (CREDIT frames) */
    bool link_pull;       /* node mode, pull feeding a remote stage: asked by
                             PULL frames instead of its own interval */
    _Atomic uint32_t asks; /* link_pull: PULL frames not yet answered */
    uint64_t local_seq;   /* seq for sources without a device */
    uint64_t last_seq;
    fl__kv kv;
    _Atomic uint64_t noroute;
    /* Live update (rt_swap.c): a park request (a ticket; 0: none) and the
     * worker's acknowledgement at a message boundary; the code version,
     * the stage's rollback generation it runs, and whether the stage is in
     * its post-swap watch window (owner only). */
    _Atomic uint32_t park_req, parked;
    uint32_t version, gen;
    bool watching;
} rt_inst;

struct rt_stage {
    const fl__stage *d;
    const fl__stage_ops *ops;
    uint32_t index;
    rt_inst *insts;
    uint32_t ninst;
    uint32_t *down;       /* downstream stage indices */
    uint32_t ndown;
    bool device;          /* placed on devices: origin-routed */
    bool has_up;
    bool need_actq;
    int32_t source;       /* source index when this stage is one, else -1 */
    int32_t *hop;         /* per source: upstream stage toward it, HOP_* */
    const char *layer;
    bool remote;          /* node mode: placed on another node (no instances) */
    int32_t only_dev;     /* device node: the one device it runs for, or -1 */
    pthread_mutex_t mu;   /* restart bookkeeping */
    uint64_t *restart_ts; /* ring of the last restart times */
    uint32_t restart_k, restart_n;
    _Atomic int stopped;
    uint64_t rate_last;   /* under fl_runtime.stats_mu */
    double rate;
    fl__swst *sw;         /* live-update state (rt_swap.c), owned */
};

struct rt_worker {
    fl_runtime *rt;
    uint32_t id;
    pthread_t th;
    bool running;
    rt_inst **insts;
    uint32_t ninsts, cap;
    rt_inst **heap;       /* timer min-heap on next_due */
    uint32_t nheap;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic int sleeping;
    _Atomic uint64_t activity;
    rt_stat *stats;       /* one per stage */
    /* Hot-path state, owner only. */
    uint64_t now;         /* last monotonic clock read (ns) */
    int64_t real_off;     /* wall clock - monotonic clock, refreshed */
    uint64_t real_at;     /* when real_off was last computed */
    fl__rbatch *rb;       /* returns to other workers' pools, batched */
    uint8_t *wpend;       /* per worker: a wake is pending */
    uint32_t *wlist, nwl; /* the workers with a pending wake */
    uint32_t cred_gid[RT_CRED_SLOTS]; /* credits owed to source instances */
    int32_t cred_n[RT_CRED_SLOTS];
    uint32_t ncred;
};

struct fl_runtime {
    const fl_graph *g;
    fl_run_opts o;
    char *dead_letter;
    uint32_t nworkers;
    rt_worker *workers;
    fl__pool *pools;      /* (nworkers + 1) * FL__NCLASSES; the last set
                             belongs to rt_net.c's pump thread */
    rt_stage *stages;
    uint32_t nstages;
    rt_inst **all;
    uint32_t ninst;
    _Atomic uint64_t *dev_seq;
    _Atomic int stopping, quit;
    bool started, joined;
    pthread_mutex_t dl_mu;
    FILE *dl;
    pthread_mutex_t stats_mu;
    uint64_t rate_t;
    uint64_t t0;
    fl__net *net;         /* node mode: the links, else NULL */
    fl__ctl *ctl;         /* node mode: the control plane (rt_ctl.c) */
    int32_t node_dev;     /* device node: its device index, else -1 */
    int node_layer;       /* node mode: the node's fl__layer, else -1 */
};

static const fl__stage_ops *(*ops_lookup)(const char *kind);

void fl__rt_set_ops_lookup(const fl__stage_ops *(*find)(const char *kind))
{
    ops_lookup = find;
}

/* ------------------------------------------------------------------------ */
/* Small helpers.                                                           */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + (int64_t)ts.tv_nsec;
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Single-writer counter increment (readers use relaxed loads). */
static inline void cnt_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t cnt_get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static inline rt_stat *stat_of(rt_inst *in)
{
    return &in->w->stats[in->st->index];
}

static const char *inst_name(const rt_inst *in)
{
    const fl_graph *g = in->rt->g;
    if (in->device >= 0 && (uint32_t)in->device < g->ndevices &&
        g->device_names && g->device_names[in->device])
        return g->device_names[in->device];
    return in->st->d->name;
}

static void rt_log(fl_runtime *rt, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Runtime log lines go to stderr, one line per call, serialised. */
static void rt_log(fl_runtime *rt, const char *fmt, ...)
{
    va_list ap;
    char line[512];
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&rt->dl_mu);
    fprintf(stderr, "isoflow: %s\n", line);
    pthread_mutex_unlock(&rt->dl_mu);
}

/* The worker to wake after a push into one of w's queues: only when it
 * sleeps (a flag read, no syscall per message).  The fence pairs with the
 * one in worker_sleep so that either the producer sees the flag or the
 * worker sees the message. */
static void wake_now(rt_worker *w)
{
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&w->sleeping, memory_order_relaxed)) {
        pthread_mutex_lock(&w->mu);
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
}

/* Wakes w (if it sleeps) after a push into one of its queues.  From a
 * worker the wake is only noted and sent by wake_flush at the end of the
 * instance's turn: one fence per batch instead of one per message.  The
 * worker never sleeps with a wake pending (wake_flush runs after every
 * instance's turn), so a sleeping consumer is woken at most one turn late. */
static void wake(rt_worker *self, rt_worker *w)
{
    if (w == self)
        return;
    if (!self) {
        wake_now(w);
        return;
    }
    if (!self->wpend[w->id]) {
        self->wpend[w->id] = 1;
        self->wlist[self->nwl++] = w->id;
    }
}

/* Sends the wakes noted by `self`: one fence, then a flag read per worker
 * (the fence pairs with the one in worker_sleep, so either the producer
 * sees the flag or the worker sees the messages pushed before the fence). */
static void wake_flush(rt_worker *self)
{
    if (!self->nwl)
        return;
    atomic_thread_fence(memory_order_seq_cst);
    for (uint32_t i = 0; i < self->nwl; i++) {
        rt_worker *w = &self->rt->workers[self->wlist[i]];
        self->wpend[w->id] = 0;
        if (atomic_load_explicit(&w->sleeping, memory_order_relaxed)) {
            pthread_mutex_lock(&w->mu);
            pthread_cond_signal(&w->cv);
            pthread_mutex_unlock(&w->mu);
        }
    }
    self->nwl = 0;
}

/* Drops one reference; the last one returns m to its pool (batched when it
 * belongs to another worker).  A sole holder needs no read-modify-write:
 * nobody else can change a count of 1. */
static void msg_release(fl_runtime *rt, rt_worker *self, fl__msg *m)
{
    if (atomic_load_explicit(&m->refs, memory_order_acquire) != 1 &&
        atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (m->tok) { /* node mode: one descendant of an ingress message less */
        fl__tok_put(m->tok);
        m->tok = NULL;
    }
    if (self)
        fl__msg_recycle_batched(rt->pools, self->rb, (int32_t)self->id, m);
    else
        fl__msg_recycle(rt->pools, -1, m);
}

#if RT_SPIN_NS > 0
/* A short pause while polling idle queues (not sched_yield: on a loaded
 * machine a yield can give the core away for a whole time slice, past the
 * next timer). */
static inline void cpu_relax(void)
{
    for (int i = 0; i < 16; i++) {
#if (defined(__GNUC__) || defined(__clang__)) &&                              \
    (defined(__x86_64__) || defined(__i386__))
        __builtin_ia32_pause();
#elif (defined(__GNUC__) || defined(__clang__)) && defined(__aarch64__)
        __asm__ __volatile__("yield");
#else
        atomic_signal_fence(memory_order_seq_cst);
#endif
    }
}
#endif

/* The worker's clock: one monotonic read, remembered as w->now (the end of
 * one stage call is the start of the next). */
static inline uint64_t clock_tick(rt_worker *w)
{
    w->now = mono_ns();
    return w->now;
}

/* The instance of stage t that handles messages of `origin`: a device
 * stage's instance for that device, else the single instance (or a hash of
 * the origin when a non-device stage has several).  NULL: no such device. */
static rt_inst *route(rt_stage *t, uint32_t origin)
{
    if (t->ninst == 0)
        return NULL;
    if (t->only_dev >= 0)
        return origin == (uint32_t)t->only_dev ? &t->insts[0] : NULL;
    if (t->ninst == 1)
        return &t->insts[0];
    if (t->device) {
        uint32_t first = t->d->first_device;
        if (origin == FL__NO_ORIGIN || origin < first ||
            origin - first >= t->ninst)
            return NULL;
        return &t->insts[origin - first];
    }
    return &t->insts[(origin == FL__NO_ORIGIN ? 0 : origin) % t->ninst];
}

/* ------------------------------------------------------------------------ */
/* Timer heap (per worker, owner only).                                     */

static void heap_swap(rt_worker *w, uint32_t a, uint32_t b)
{
    rt_inst *t = w->heap[a];
    w->heap[a] = w->heap[b];
    w->heap[b] = t;
    w->heap[a]->heap_pos = a;
    w->heap[b]->heap_pos = b;
}

static void heap_push(rt_worker *w, rt_inst *in)
{
    uint32_t i = w->nheap++;
    w->heap[i] = in;
    in->heap_pos = i;
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (w->heap[p]->next_due <= w->heap[i]->next_due)
            break;
        heap_swap(w, p, i);
        i = p;
    }
}

static rt_inst *heap_pop(rt_worker *w)
{
    rt_inst *top = w->heap[0];
    uint32_t i = 0;
    w->nheap--;
    if (w->nheap) {
        w->heap[0] = w->heap[w->nheap];
        w->heap[0]->heap_pos = 0;
        for (;;) {
            uint32_t l = 2 * i + 1, r = l + 1, m = i;
            if (l < w->nheap && w->heap[l]->next_due < w->heap[m]->next_due)
                m = l;
            if (r < w->nheap && w->heap[r]->next_due < w->heap[m]->next_due)
                m = r;
            if (m == i)
                break;
            heap_swap(w, i, m);
            i = m;
        }
    }
    top->heap_pos = UINT32_MAX;
    return top;
}

/* ------------------------------------------------------------------------ */
/* Dead letters and supervision.                                            */

static void json_str(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20 || c >= 0x7f)
                fprintf(f, "\\u%04x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}

/*
 * Appends one JSON line to the dead-letter file (opened on first use):
 * stage, instance, device, origin, seq, what was being done, the error text
 * and the message (bytes >= 0x7f escaped as \u00XX).  `m` may be NULL (a
 * failing produce).
 */
static void dead_letter(rt_inst *in, const fl__msg *m, const char *what,
                        const char *error)
{
    fl_runtime *rt = in->rt;
    const char *iname = inst_name(in);
    pthread_mutex_lock(&rt->dl_mu);
    if (!rt->dl) {
        rt->dl = fopen(rt->dead_letter, "a");
        if (!rt->dl) {
            fprintf(stderr, "isoflow: cannot open dead-letter file %s: %s\n",
                    rt->dead_letter, strerror(errno));
            pthread_mutex_unlock(&rt->dl_mu);
            return;
        }
    }
    FILE *f = rt->dl;
    fputs("{\"stage\":", f);
    json_str(f, in->st->d->name, strlen(in->st->d->name));
    fputs(",\"instance\":", f);
    json_str(f, iname, strlen(iname));
    fprintf(f, ",\"device\":%d", (int)in->device);
    if (m && m->origin != FL__NO_ORIGIN)
        fprintf(f, ",\"origin\":%u", (unsigned)m->origin);
    else
        fputs(",\"origin\":null", f);
    fprintf(f, ",\"seq\":%llu,\"ts\":%lld,\"in\":",
            (unsigned long long)(m ? m->seq : 0),
            (long long)(m ? m->ts : 0));
    json_str(f, what, strlen(what));
    fputs(",\"error\":", f);
    json_str(f, error, strlen(error));
    fputs(",\"topic\":", f);
    json_str(f, m ? m->topic : "", m ? m->topic_len : 0);
    fputs(",\"message\":", f);
    json_str(f, m ? (const char *)m->data : "", m ? m->len : 0);
    fputs("}\n", f);
    fflush(f);
    pthread_mutex_unlock(&rt->dl_mu);
}

static const if_host_api host_api;

/* Creates in's host instance running the stage's current code: the module
 * of the last swap (rt_swap.c) or, never swapped, the declaration's file;
 * init runs.  Sets the instance's version and rollback generation. */
static fl_status inst_create(rt_inst *in, char *err, size_t errlen)
{
    uint32_t ver = 1, gen = 0;
    fl__code *m = fl__swap_current(in->st->sw, &ver, &gen);
    fl_status s;
    in->phase = PH_INIT;
    in->version = ver;
    in->gen = gen;
    if (m) {
        s = fl__code_create(in->st->d, m, &host_api, in, &in->host, err,
                            errlen);
        fl__code_release(m);
    } else {
        s = in->st->ops->create(in->st->d, &host_api, in, in->device,
                                &in->host, err, errlen);
    }
    in->phase = PH_IDLE;
    return s;
}

/* Live update rolled the stage back (rt_swap.c bumped its generation):
 * replaces in's host, at a message boundary on its own worker, with an
 * instance of the code now current (the previous version). */
static void inst_reload(rt_inst *in)
{
    char err[RT_ERRLEN];
    if (in->host) {
        in->st->ops->destroy(in->host);
        in->host = NULL;
    }
    in->watching = false;
    err[0] = '\0';
    if (inst_create(in, err, sizeof err) != FL_OK) {
        in->host = NULL;
        rt_log(in->rt, "stage %s (%s): rollback failed: %s", in->st->d->name,
               inst_name(in), err[0] ? err : "cannot create the instance");
    }
}

/*
 * Destroys a trapped instance and, unless the stage exceeded its restart
 * intensity (more than max_restarts restarts within restart_window_ms),
 * creates a fresh one (init runs again; the kv state is kept).  Exceeding
 * the intensity stops the whole stage: every instance is destroyed by its
 * own worker, later messages are dropped and counted.
 */
static void restart_or_stop(rt_inst *in)
{
    fl_runtime *rt = in->rt;
    rt_stage *st = in->st;
    uint64_t now = mono_ns();
    uint64_t window = (uint64_t)rt->o.restart_window_ms * 1000000ull;
    bool stop = false;
    char err[RT_ERRLEN];

    pthread_mutex_lock(&st->mu);
    if (atomic_load(&st->stopped)) {
        stop = true;
    } else {
        st->restart_ts[st->restart_n % st->restart_k] = now;
        st->restart_n++;
        if (st->restart_n >= st->restart_k) {
            uint64_t oldest = st->restart_ts[st->restart_n % st->restart_k];
            if (now - oldest <= window) {
                atomic_store(&st->stopped, 1);
                stop = true;
                rt_log(rt,
                       "stage %s stopped: more than %u restarts within %u ms",
                       st->d->name, (unsigned)rt->o.max_restarts,
                       (unsigned)rt->o.restart_window_ms);
            }
        }
    }
    pthread_mutex_unlock(&st->mu);

    if (in->host) {
        st->ops->destroy(in->host);
        in->host = NULL;
    }
    if (stop)
        return;
    err[0] = '\0';
    fl_status s = inst_create(in, err, sizeof err);
    if (s != FL_OK) {
        in->host = NULL;
        rt_log(rt, "stage %s (%s): restart failed: %s", st->d->name,
               inst_name(in), err[0] ? err : fl_status_msg(s));
        return;
    }
    cnt_add(&stat_of(in)->restarts, 1);
}

/* A failed call: dead-letter, count, and restart on a trap. */
static void on_failure(rt_inst *in, const fl__msg *m, const char *what,
                       fl_status s, const char *err)
{
    rt_stat *sc = stat_of(in);
    const char *text = err && err[0] ? err : fl_status_msg(s);
    dead_letter(in, m, what, text);
    cnt_add(&sc->errors, 1);
    if (s == FL_TRAP) {
        cnt_add(&sc->traps, 1);
        /* a trap right after a swap rolls the stage back (rt_swap.c) */
        if (fl__swap_trap(in->st->sw, text) ||
            in->gen != fl__swap_gen(in->st->sw))
            inst_reload(in);
        else
            restart_or_stop(in);
    }
}

/* ------------------------------------------------------------------------ */
/* Credits, outboxes and delivery.                                          */

/* One consumer is done with a demand message: the last one returns the
 * credit to the source instance and wakes its worker. */
static void cred_flush(fl_runtime *rt, rt_worker *self);

static void credit_settle(fl_runtime *rt, rt_worker *self, fl__msg *m)
{
    if (m->credit_inst == UINT32_MAX)
        return;
    if (atomic_load_explicit(&m->credit_holders, memory_order_acquire) != 1 &&
        atomic_fetch_sub_explicit(&m->credit_holders, 1,
                                  memory_order_acq_rel) != 1)
        return;
    if (self) { /* returned in bulk by cred_flush at the end of the turn */
        uint32_t i;
        for (i = 0; i < self->ncred; i++)
            if (self->cred_gid[i] == m->credit_inst)
                break;
        if (i == self->ncred) {
            if (self->ncred == RT_CRED_SLOTS) {
                cred_flush(rt, self);
                i = 0;
            }
            self->cred_gid[i] = m->credit_inst;
            self->cred_n[i] = 0;
            self->ncred = i + 1;
        }
        self->cred_n[i]++;
        return;
    }
    rt_inst *src = rt->all[m->credit_inst];
    atomic_fetch_add_explicit(&src->credits, 1, memory_order_release);
    wake(self, src->w);
}

/* Returns the credits `self` collected, one atomic add per source
 * instance, and notes a wake for each source's worker.  Delaying a return
 * only lowers what a source may have in flight. */
static void cred_flush(fl_runtime *rt, rt_worker *self)
{
    for (uint32_t i = 0; i < self->ncred; i++) {
        rt_inst *src = rt->all[self->cred_gid[i]];
        atomic_fetch_add_explicit(&src->credits, self->cred_n[i],
                                  memory_order_release);
        wake(self, src->w);
    }
    self->ncred = 0;
}

/* The end of an instance's turn (or of the timer phase): credits back,
 * wakes sent. */
static void turn_end(rt_worker *w)
{
    if (w->ncred)
        cred_flush(w->rt, w);
    wake_flush(w);
}

/* Node mode: hands m to the link toward the node of remote stage `stage`
 * (rt_net.c).  Returns 0 (spooled), 1 (spool full: retry) or -1 (no
 * route). */
static int net_send(fl_runtime *rt, const fl__msg *m, uint32_t stage,
                    uint8_t kind)
{
    fl__wire w;
    if (!rt->net || stage > UINT16_MAX)
        return -1;
    w.origin = m->origin;
    w.seq = m->seq;
    w.ts = m->ts;
    w.stage = (uint16_t)stage;
    w.kind = kind;
    w.src = m->src;
    w.topic = m->topic;
    w.topic_len = m->topic_len;
    w.data = m->data;
    w.len = m->len;
    return fl__net_send(rt->net, &w);
}

/* A new message derived from `parent` (may be NULL) carries its ingress
 * token, holding one more live count. */
static inline void tok_inherit(fl__msg *m, const fl__msg *parent)
{
    m->tok = parent ? parent->tok : NULL;
    if (m->tok)
        atomic_fetch_add_explicit(&m->tok->live, 1, memory_order_relaxed);
}

/* Appends m (refs already set to the number of destinations) to the
 * outbox; false when the outbox cannot grow. */
static bool out_append(rt_inst *in, fl__msg *m)
{
    if (in->nout == in->out_cap) {
        uint32_t ncap = in->out_cap ? in->out_cap * 2 : 4;
        if (ncap > FL__MAX_EMITS * 2)
            ncap = FL__MAX_EMITS * 2;
        if (ncap <= in->out_cap)
            return false;
        rt_out *n = realloc(in->out, ncap * sizeof *n);
        if (!n)
            return false;
        in->out = n;
        in->out_cap = ncap;
    }
    in->out[in->nout].m = m;
    in->out[in->nout].next = 0;
    in->nout++;
    return true;
}

/*
 * Pushes the outbox into the downstream queues in order.  A full queue
 * stops the flush (back-pressure: the caller retries later) unless `drops`
 * (push sources), in which case the message is dropped for that destination
 * and counted.  Returns true when the outbox is empty.
 */
static bool out_flush(rt_inst *in, bool drops)
{
    fl_runtime *rt = in->rt;
    rt_stage *st = in->st;
    while (in->outpos < in->nout) {
        rt_out *e = &in->out[in->outpos];
        fl__msg *m = e->m;
        while (e->next < st->ndown) {
            rt_stage *t = &rt->stages[st->down[e->next]];
            if (t->remote) {
                int r = net_send(rt, m, t->index, FL__MSG_DATA);
                if (r > 0) {
                    atomic_store_explicit(&in->busy, 1, memory_order_relaxed);
                    return false;
                }
                if (r < 0)
                    cnt_add(&stat_of(in)->dropped, 1);
                /* A credit of a link-credited source comes back over the
                 * link (rt_net.c), not from this hand-over. */
                if (r < 0 || m->credit_inst == UINT32_MAX ||
                    !rt->all[m->credit_inst]->link_credit)
                    credit_settle(rt, in->w, m);
                msg_release(rt, in->w, m);
                e->next++;
                continue;
            }
            rt_inst *d = route(t, m->origin);
            if (d && fl__ring_push(&d->inq, m)) {
                wake(in->w, d->w);
                e->next++;
                continue;
            }
            if (d && !drops) {
                atomic_store_explicit(&in->busy, 1, memory_order_relaxed);
                return false;
            }
            cnt_add(&stat_of(in)->dropped, 1);
            credit_settle(rt, in->w, m);
            msg_release(rt, in->w, m);
            e->next++;
        }
        in->outpos++;
    }
    in->nout = in->outpos = 0;
    return true;
}

/* Drops the outbox entries from `mark` on (the emits of a failed call). */
static void out_discard(rt_inst *in, uint32_t mark)
{
    rt_stat *sc = stat_of(in);
    while (in->nout > mark) {
        fl__msg *m = in->out[--in->nout].m;
        atomic_store_explicit(&m->refs, 1, memory_order_relaxed);
        msg_release(in->rt, in->w, m);
        cnt_add(&sc->out, (uint64_t)-1);
    }
}

/* The current message is processed and its outputs are downstream: return
 * the demand credit, count end-to-end latency at a terminal stage, drop
 * the reference. */
static void finish_cur(rt_inst *in)
{
    fl__msg *m = in->cur;
    in->finish_pending = false;
    atomic_store_explicit(&in->busy, 0, memory_order_relaxed);
    if (!m)
        return;
    in->cur = NULL;
    if (in->st->ndown == 0 && in->cur_ok && m->kind == FL__MSG_DATA) {
        rt_stat *sc = stat_of(in);
        cnt_add(&sc->delivered, 1);
        fl__hist_add(&sc->e2e, in->w->now - m->t_in);
    }
    credit_settle(in->rt, in->w, m);
    msg_release(in->rt, in->w, m);
}

/* ------------------------------------------------------------------------ */
/* The host API (stage.h): ctx is the rt_inst.                              */

static uint64_t next_seq(rt_inst *in)
{
    if (in->device >= 0 && (uint32_t)in->device < in->rt->g->ndevices)
        return atomic_fetch_add_explicit(&in->rt->dev_seq[in->device], 1,
                                         memory_order_relaxed) +
               1;
    return ++in->local_seq;
}

/* Demand: a produced reading goes to the device-side buffer; the policy
 * decides what a full buffer loses. */
static void dbuf_put(rt_inst *in, fl__msg *m)
{
    if (in->dcount == in->dcap) {
        fl__msg *old = in->dbuf[in->dhead];
        in->dhead = (in->dhead + 1) % in->dcap;
        in->dcount--;
        msg_release(in->rt, in->w, old);
        cnt_add(&stat_of(in)->dropped, 1);
    }
    in->dbuf[(in->dhead + in->dcount) % in->dcap] = m;
    in->dcount++;
}

static int api_emit(void *ctx, const char *topic, size_t topic_len,
                    const void *data, size_t len)
{
    rt_inst *in = ctx;
    rt_stage *st = in->st;
    rt_stat *sc;
    fl__msg *m;

    if (in->phase != PH_PROCESS && in->phase != PH_PRODUCE)
        return IF_EINVAL;
    if (len > FL__MAX_MSG)
        return IF_ETOOBIG;
    if (topic_len > FL__MAX_TOPIC || (topic_len && !topic) || (len && !data))
        return IF_EINVAL;
    if (in->call_emits >= FL__MAX_EMITS)
        return IF_EFULL;
    sc = stat_of(in);
    m = fl__msg_alloc(&in->rt->pools[(size_t)in->w->id * FL__NCLASSES],
                      (uint16_t)in->w->id, len);
    if (!m) {
        cnt_add(&sc->dropped, 1);
        return IF_EFULL;
    }
    tok_inherit(m, in->phase == PH_PROCESS ? in->cur : NULL);
    if (len)
        memcpy(m->data, data, len);
    m->len = (uint32_t)len;
    if (topic_len) {
        memcpy(m->topic, topic, topic_len);
        m->topic_len = (uint8_t)topic_len;
    } else {
        size_t n = strlen(st->d->name);
        if (n > FL__MAX_TOPIC)
            n = FL__MAX_TOPIC;
        memcpy(m->topic, st->d->name, n);
        m->topic_len = (uint8_t)n;
    }
    m->topic[m->topic_len] = '\0';
    if (in->phase == PH_PROCESS && in->cur) {
        m->origin = in->cur->origin;
        m->src = in->cur->src;
        m->seq = in->cur->seq;
        m->ts = in->cur->ts;
        m->t_in = in->cur->t_in;
    } else {
        m->origin = in->device >= 0 ? (uint32_t)in->device : FL__NO_ORIGIN;
        m->src = in->source;
        m->seq = in->last_seq = next_seq(in);
        m->t_in = in->w->now; /* the start of this produce call */
        m->ts = (int64_t)m->t_in + in->w->real_off;
        cnt_add(&sc->produced, 1);
    }
    in->call_emits++;
    cnt_add(&sc->out, 1);
    if (in->phase == PH_PRODUCE && in->mode == FL__MODE_DEMAND &&
        in->source >= 0) {
        dbuf_put(in, m);
        return IF_OK;
    }
    if (st->ndown == 0) {
        msg_release(in->rt, in->w, m);
        return IF_OK;
    }
    atomic_store_explicit(&m->refs, st->ndown, memory_order_relaxed);
    if (!out_append(in, m)) {
        atomic_store_explicit(&m->refs, 1, memory_order_relaxed);
        msg_release(in->rt, in->w, m);
        cnt_add(&sc->out, (uint64_t)-1);
        return IF_EFULL;
    }
    return IF_OK;
}

/*
 * Sends an actuation from stage `in->st` one hop upstream toward source
 * `src`'s stage; at the source it goes to the actuator's instance for the
 * origin device (or the source's own instance) as a final delivery.  Returns
 * IF_OK, IF_ENOROUTE (no bidirectional path), IF_ETOOBIG or IF_EFULL (a
 * full actuation queue or pool: dropped and counted).
 */
static int route_act(rt_inst *in, uint32_t origin, int32_t src,
                     const void *data, size_t len)
{
    fl_runtime *rt = in->rt;
    rt_stage *st = in->st, *target;
    rt_inst *d;
    fl__msg *m;
    int32_t h;
    uint8_t kind;

    if (len > FL__MAX_MSG)
        return IF_ETOOBIG;
    if (src < 0 || (uint32_t)src >= rt->g->nsources)
        goto noroute;
    h = st->hop[src];
    if (h == HOP_NONE)
        goto noroute;
    uint32_t sstage = rt->g->sources[src].stage;
    if (h == HOP_SELF || (uint32_t)h == sstage) {
        int32_t a = rt->g->stages[sstage].actuator_idx;
        target = &rt->stages[a >= 0 ? (uint32_t)a : sstage];
        kind = FL__MSG_ACT_FINAL;
    } else {
        target = &rt->stages[h];
        kind = FL__MSG_ACT;
    }
    if (target->remote) {
        fl__wire w;
        int r;
        memset(&w, 0, sizeof w);
        w.origin = origin;
        w.seq = in->cur ? in->cur->seq : 0;
        w.ts = real_ns();
        w.stage = (uint16_t)target->index;
        w.kind = kind;
        w.src = src;
        w.topic = in->cur ? in->cur->topic : "";
        w.topic_len = in->cur ? in->cur->topic_len : 0;
        w.data = data;
        w.len = (uint32_t)len;
        r = rt->net && target->index <= UINT16_MAX ? fl__net_send(rt->net, &w)
                                                   : -1;
        if (r < 0)
            goto noroute;
        if (r > 0) {
            cnt_add(&stat_of(in)->dropped, 1);
            return IF_EFULL;
        }
        return IF_OK;
    }
    d = route(target, origin);
    if (!d || !d->actq.cells)
        goto noroute;
    m = fl__msg_alloc(&rt->pools[(size_t)in->w->id * FL__NCLASSES],
                      (uint16_t)in->w->id, len);
    if (!m) {
        cnt_add(&stat_of(in)->dropped, 1);
        return IF_EFULL;
    }
    tok_inherit(m, in->cur);
    if (len)
        memcpy(m->data, data, len);
    m->len = (uint32_t)len;
    m->kind = kind;
    m->origin = origin;
    m->src = src;
    m->ts = real_ns();
    m->t_in = mono_ns();
    if (in->cur) {
        m->seq = in->cur->seq;
        memcpy(m->topic, in->cur->topic, sizeof m->topic);
        m->topic_len = in->cur->topic_len;
    }
    if (!fl__ring_push(&d->actq, m)) {
        msg_release(rt, in->w, m);
        cnt_add(&stat_of(in)->dropped, 1);
        return IF_EFULL;
    }
    wake(in->w, d->w);
    return IF_OK;
noroute:
    cnt_add(&in->noroute, 1);
    cnt_add(&stat_of(in)->dropped, 1);
    return IF_ENOROUTE;
}

static int api_actuate(void *ctx, const void *data, size_t len)
{
    rt_inst *in = ctx;
    if (len && !data)
        return IF_EINVAL;
    switch (in->phase) {
    case PH_PROCESS:
        return route_act(in, in->cur->origin, in->cur->src, data, len);
    case PH_ACT:
        if (in->cur->kind == FL__MSG_ACT_FINAL) {
            cnt_add(&in->noroute, 1);
            return IF_ENOROUTE;
        }
        return route_act(in, in->cur->origin, in->cur->src, data, len);
    case PH_PRODUCE:
        return route_act(in,
                         in->device >= 0 ? (uint32_t)in->device
                                         : FL__NO_ORIGIN,
                         in->source, data, len);
    default:
        return IF_EINVAL;
    }
}

static void api_log(void *ctx, int level, const char *text, size_t len)
{
    rt_inst *in = ctx;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    if (level <= IF_LOG_DEBUG)
        return;
    if (level > IF_LOG_ERROR)
        level = IF_LOG_ERROR;
    if (len > 255)
        len = 255;
    pthread_mutex_lock(&in->rt->dl_mu);
    fprintf(stderr, "[%s %s] %s: %.*s\n", in->st->d->name, inst_name(in),
            names[level], (int)len, text);
    pthread_mutex_unlock(&in->rt->dl_mu);
}

static int64_t api_now_ns(void *ctx)
{
    (void)ctx;
    return real_ns();
}

static int64_t api_meta(void *ctx, int field)
{
    rt_inst *in = ctx;
    const fl__msg *m = in->cur;
    switch (field) {
    case IF_META_SEQ:
        return (int64_t)(m ? m->seq : in->last_seq);
    case IF_META_TS:
        return m ? m->ts : real_ns();
    case IF_META_ORIGIN:
        if (m)
            return m->origin == FL__NO_ORIGIN ? IF_ENOTFOUND
                                              : (int64_t)m->origin;
        return in->device >= 0 ? in->device : IF_ENOTFOUND;
    case IF_META_VERSION:
        return in->version;
    default:
        return IF_EINVAL;
    }
}

static int copy_str(const char *s, size_t n, char *buf, size_t cap)
{
    if (cap) {
        size_t k = n < cap - 1 ? n : cap - 1;
        if (buf) {
            memcpy(buf, s, k);
            buf[k] = '\0';
        }
    }
    return (int)n;
}

static int api_meta_str(void *ctx, int field, char *buf, size_t cap)
{
    rt_inst *in = ctx;
    const fl_graph *g = in->rt->g;
    const fl__msg *m = in->cur;
    const char *s;
    switch (field) {
    case IF_META_ORIGIN_NAME: {
        int64_t o = api_meta(ctx, IF_META_ORIGIN);
        if (o < 0 || (uint64_t)o >= g->ndevices || !g->device_names)
            return IF_ENOTFOUND;
        s = g->device_names[o];
        return copy_str(s, strlen(s), buf, cap);
    }
    case IF_META_TOPIC:
        if (!m)
            return IF_ENOTFOUND;
        return copy_str(m->topic, m->topic_len, buf, cap);
    case IF_META_STAGE:
        s = in->st->d->name;
        return copy_str(s, strlen(s), buf, cap);
    case IF_META_INSTANCE:
        s = inst_name(in);
        return copy_str(s, strlen(s), buf, cap);
    default:
        return IF_EINVAL;
    }
}

static int api_kv_get(void *ctx, const char *key, size_t key_len, void *buf,
                      size_t cap)
{
    return fl__kv_get(&((rt_inst *)ctx)->kv, key, key_len, buf, cap);
}

static int api_kv_set(void *ctx, const char *key, size_t key_len,
                      const void *val, size_t len)
{
    return fl__kv_set(&((rt_inst *)ctx)->kv, key, key_len, val, len);
}

static int api_kv_del(void *ctx, const char *key, size_t key_len)
{
    return fl__kv_del(&((rt_inst *)ctx)->kv, key, key_len);
}

static const if_host_api host_api = {
    IF_ABI_VERSION, api_emit,   api_actuate,   api_log,    api_now_ns,
    api_meta,       api_meta_str, api_kv_get,  api_kv_set, api_kv_del,
};

/* ------------------------------------------------------------------------ */
/* The worker's steps.                                                      */

/* Calls produce() on a source instance; emits go to the outbox (push,
 * pull) or the device-side buffer (demand). */
static void call_produce(rt_inst *in)
{
    char err[RT_ERRLEN];
    uint32_t mark = in->nout;
    uint64_t t0;
    fl_status s;

    if (!in->host || !in->st->ops->produce)
        return;
    err[0] = '\0';
    in->phase = PH_PRODUCE;
    in->cur = NULL;
    in->call_emits = 0;
    t0 = in->w->now;
    s = in->st->ops->produce(in->host, err, sizeof err);
    fl__hist_add(&stat_of(in)->proc, clock_tick(in->w) - t0);
    in->phase = PH_IDLE;
    if (in->watching)
        in->watching = fl__swap_seen(in->st->sw);
    if (s != FL_OK && s != FL_PASS) {
        out_discard(in, mark);
        on_failure(in, NULL, "produce", s, err);
        clock_tick(in->w);
    }
}

/* Demand: sends buffered readings while credits last (one credit each),
 * flushes, and without a schedule asks produce() for more when the buffer
 * is empty and a credit is free.  Returns true when something moved. */
static bool demand_pump(rt_inst *in, uint64_t now)
{
    fl_runtime *rt = in->rt;
    bool moved = false;
    rt_stage *st = in->st;

    if (in->nout && !out_flush(in, false))
        return false;
    if (atomic_load_explicit(&rt->stopping, memory_order_relaxed))
        return false;
    /* Without a schedule, produce as long as credits allow (bounded per
     * pass so that other instances get their turn). */
    for (int round = 0; round <= RT_BATCH; round++) {
        /* Only this worker takes credits (others only return them), so the
         * credits read once are ours to spend; one atomic per batch. */
        int32_t avail = atomic_load_explicit(&in->credits,
                                             memory_order_acquire);
        int32_t taken = 0;
        while (in->dcount && taken < avail && in->nout < FL__MAX_EMITS) {
            fl__msg *m = in->dbuf[in->dhead];
            in->dhead = (in->dhead + 1) % in->dcap;
            in->dcount--;
            taken++;
            m->credit_inst = in->gid;
            if (st->ndown == 0) {
                atomic_store_explicit(&m->credit_holders, 1,
                                      memory_order_relaxed);
                credit_settle(rt, in->w, m);
                msg_release(rt, in->w, m);
            } else {
                atomic_store_explicit(&m->credit_holders, st->ndown,
                                      memory_order_relaxed);
                atomic_store_explicit(&m->refs, st->ndown,
                                      memory_order_relaxed);
                out_append(in, m); /* nout < FL__MAX_EMITS <= out cap max */
            }
            moved = true;
        }
        if (taken) {
            int32_t left = atomic_fetch_sub_explicit(&in->credits, taken,
                                                     memory_order_acq_rel) -
                           taken;
            uint32_t infl = (uint32_t)(in->credits_init - left);
            if (infl > atomic_load_explicit(&in->inflight_max,
                                            memory_order_relaxed))
                atomic_store_explicit(&in->inflight_max, infl,
                                      memory_order_relaxed);
        }
        if (in->nout && !out_flush(in, false))
            return moved;
        if (round < RT_BATCH && in->period == 0 && in->dcount == 0 &&
            now >= in->retry_at &&
            atomic_load_explicit(&in->credits, memory_order_acquire) > 0) {
            call_produce(in);
            if (in->dcount == 0) {
                in->retry_at = now + RT_RETRY_NS;
                if (in->heap_pos == UINT32_MAX) {
                    in->next_due = in->retry_at;
                    heap_push(in->w, in);
                }
                break;
            }
            moved = true;
            continue;
        }
        break;
    }
    return moved;
}

/* A due timer of a source instance. */
static void tick(rt_inst *in, uint64_t now)
{
    fl_runtime *rt = in->rt;
    if (atomic_load_explicit(&rt->stopping, memory_order_relaxed))
        return; /* not rescheduled: sources stop */
    if (!atomic_load_explicit(&in->st->stopped, memory_order_relaxed) &&
        !atomic_load_explicit(&in->park_req, memory_order_acquire)) {
        switch (in->mode) {
        case FL__MODE_PUSH:
            call_produce(in);
            out_flush(in, true);
            break;
        case FL__MODE_PULL:
            if (in->nout && !out_flush(in, false)) {
                cnt_add(&stat_of(in)->dropped, 1); /* the ask is skipped */
            } else {
                call_produce(in);
                out_flush(in, false);
            }
            break;
        default: /* demand */
            if (in->period) {
                if (in->policy != FL__POLICY_BLOCK ||
                    (atomic_load(&in->credits) > 0 && in->dcount == 0 &&
                     in->nout == 0))
                    call_produce(in);
            }
            demand_pump(in, now);
            break;
        }
    }
    if (in->period) {
        /* Catch up on ticks missed by less than RT_CATCHUP_NS (a worker
         * wakes tens of microseconds late: a fast source would otherwise
         * lose a tick per wake-up); further behind, skip ahead rather
         * than burst. */
        in->next_due += in->period;
        if (in->next_due + (in->period > RT_CATCHUP_NS ? in->period
                                                       : RT_CATCHUP_NS) < now)
            in->next_due = now + in->period;
        heap_push(in->w, in);
    }
}

/* Handles one actuation from the instance's actuation queue. */
static bool run_act(rt_inst *in)
{
    fl_runtime *rt = in->rt;
    fl__msg *m = fl__ring_pop(&in->actq);
    char err[RT_ERRLEN];
    rt_stat *sc;
    fl_status s;

    if (!m)
        return false;
    sc = stat_of(in);
    if (!in->host || atomic_load_explicit(&in->st->stopped,
                                          memory_order_relaxed)) {
        cnt_add(&sc->dropped, 1);
        msg_release(rt, in->w, m);
        return true;
    }
    err[0] = '\0';
    in->cur = m;
    in->phase = PH_ACT;
    s = in->st->ops->actuation ? in->st->ops->actuation(in->host, m->data,
                                                        m->len, err,
                                                        sizeof err)
                               : FL_PASS;
    in->phase = PH_IDLE;
    cnt_add(&sc->act, 1);
    if (m->kind == FL__MSG_ACT_FINAL)
        cnt_add(&sc->act_delivered, 1);
    if (s == FL_PASS && m->kind == FL__MSG_ACT)
        route_act(in, m->origin, m->src, m->data, m->len);
    else if (s != FL_OK && s != FL_PASS)
        on_failure(in, m, "actuation", s, err);
    in->cur = NULL;
    msg_release(rt, in->w, m);
    return true;
}

/* Processes one input.  Returns 0 (queue empty), 1 (done) or -1 (done but
 * the outbox waits on a full downstream queue). */
static int run_input(rt_inst *in)
{
    fl_runtime *rt = in->rt;
    fl__msg *m = fl__ring_pop(&in->inq);
    char err[RT_ERRLEN];
    rt_stat *sc;
    uint64_t t0;
    fl_status s;

    if (!m)
        return 0;
    sc = stat_of(in);
    if (!in->host ||
        atomic_load_explicit(&in->st->stopped, memory_order_relaxed)) {
        cnt_add(&sc->dropped, 1);
        credit_settle(rt, in->w, m);
        msg_release(rt, in->w, m);
        return 1;
    }
    err[0] = '\0';
    in->cur = m;
    in->phase = PH_PROCESS;
    in->call_emits = 0;
    t0 = in->w->now;
    s = in->st->ops->process(in->host, m->data, m->len, err, sizeof err);
    fl__hist_add(&sc->proc, clock_tick(in->w) - t0);
    in->phase = PH_IDLE;
    cnt_add(&sc->in, 1);
    if (in->watching)
        in->watching = fl__swap_seen(in->st->sw);
    in->cur_ok = (s == FL_OK || s == FL_PASS);
    if (!in->cur_ok) {
        out_discard(in, 0);
        on_failure(in, m, "process", s, err);
        clock_tick(in->w);
    }
    if (!out_flush(in, false)) {
        in->finish_pending = true;
        return -1;
    }
    finish_cur(in);
    return 1;
}

/* One pass over an instance; returns the number of steps taken. */
static unsigned service(rt_inst *in, uint64_t now)
{
    unsigned n = 0;
    uint32_t park = atomic_load_explicit(&in->park_req, memory_order_acquire);
    if (park) { /* live update: stay out of this instance (rt_swap.c) */
        atomic_store_explicit(&in->parked, park, memory_order_release);
        return 0;
    }
    if (in->gen != fl__swap_gen(in->st->sw))
        inst_reload(in); /* the stage was rolled back */
    if (in->host && atomic_load_explicit(&in->st->stopped,
                                         memory_order_relaxed)) {
        in->st->ops->destroy(in->host); /* stopped by another worker */
        in->host = NULL;
    }
    if (in->nout || in->finish_pending) {
        if (!out_flush(in, false))
            return 0;
        if (in->finish_pending) {
            clock_tick(in->w); /* e2e ends now, not at the blocked call */
            finish_cur(in);
        }
        atomic_store_explicit(&in->busy, 0, memory_order_relaxed);
        n++;
    }
    if (in->actq.cells)
        for (unsigned k = 0; k < RT_ACT_BATCH && run_act(in); k++)
            n++;
    if (in->source >= 0 && in->mode == FL__MODE_DEMAND)
        n += demand_pump(in, now) ? 1 : 0;
    if (in->link_pull && atomic_load_explicit(&in->asks, memory_order_acquire)) {
        /* One produce() per PULL frame taken (also while stopping: the
         * link layer takes none after the pause, and the answer drains);
         * an ask meeting a blocked outbox is skipped and counted, like a
         * local pull tick. */
        uint32_t k = atomic_exchange(&in->asks, 0);
        for (; k > 0; k--, n++) {
            if (in->nout && !out_flush(in, false)) {
                cnt_add(&stat_of(in)->dropped, 1);
                continue;
            }
            call_produce(in);
            out_flush(in, false);
        }
    }
    if (in->inq.cells) {
        for (unsigned k = 0; k < RT_BATCH; k++) {
            int r = run_input(in);
            if (r == 0)
                break;
            n++;
            if (r < 0)
                break;
        }
    }
    return n;
}

/* Is there anything this worker could do right now?  (Checked with the
 * sleeping flag set, under the worker's mutex.) */
static bool has_work(rt_worker *w, uint64_t now, bool *blocked)
{
    bool stopping = atomic_load(&w->rt->stopping);
    *blocked = false;
    for (uint32_t i = 0; i < w->ninsts; i++) {
        rt_inst *in = w->insts[i];
        uint32_t park = atomic_load(&in->park_req);
        if (park) { /* parked: only the acknowledgement is work */
            if (atomic_load(&in->parked) != park)
                return true;
            continue;
        }
        if (in->nout || in->finish_pending) {
            *blocked = true;
            continue;
        }
        if (fl__ring_depth(&in->inq) || fl__ring_depth(&in->actq))
            return true;
        if (in->source >= 0 && in->mode == FL__MODE_DEMAND && !stopping &&
            atomic_load(&in->credits) > 0 &&
            (in->dcount || (in->period == 0 && now >= in->retry_at)))
            return true;
        if (in->link_pull && atomic_load(&in->asks))
            return true;
    }
    return false;
}

/* Sleeps until woken, the next timer, or a short while when an outbox
 * waits on a full queue (the consumer does not signal producers). */
static void worker_sleep(rt_worker *w)
{
    fl_runtime *rt = w->rt;
    uint64_t now = mono_ns(), until = now + RT_IDLE_NS;
    bool blocked;
    if (w->nheap && !atomic_load(&rt->stopping) && w->heap[0]->next_due < until)
        until = w->heap[0]->next_due;
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->sleeping, 1);
    atomic_thread_fence(memory_order_seq_cst);
    if (!has_work(w, now, &blocked) && !atomic_load(&rt->quit)) {
        if (blocked && until > now + RT_BLOCKED_NS)
            until = now + RT_BLOCKED_NS;
        if (until > now) {
            struct timespec ts;
            ts.tv_sec = (time_t)(until / 1000000000ull);
            ts.tv_nsec = (long)(until % 1000000000ull);
            pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        }
    }
    atomic_store(&w->sleeping, 0);
    pthread_mutex_unlock(&w->mu);
}

/*
 * The worker loop.  Phase order of one pass: (1) due source timers
 * (push/pull/demand ticks, at most RT_BATCH), (2) every pinned instance in turn: pending
 * outbox, actuations, demand credits, then up to RT_BATCH inputs, (3) sleep
 * when the pass did nothing.
 */
static void *worker_main(void *arg)
{
    rt_worker *w = arg;
    fl_runtime *rt = w->rt;
    uint64_t idle_since = 0;
    (void)idle_since; /* used only when RT_SPIN_NS > 0 */
    while (!atomic_load_explicit(&rt->quit, memory_order_acquire)) {
        uint64_t now = clock_tick(w);
        unsigned n = 0;
        if (now - w->real_at >= RT_REAL_REFRESH_NS || w->real_at == 0) {
            w->real_off = real_ns() - (int64_t)now;
            w->real_at = now;
        }
        /* At most RT_BATCH ticks per pass: overdue sources must not starve
         * the stages behind them. */
        for (unsigned k = 0; k < RT_BATCH && w->nheap &&
                             w->heap[0]->next_due <= now &&
                             !atomic_load_explicit(&rt->stopping,
                                                   memory_order_relaxed);
             k++) {
            rt_inst *in = heap_pop(w);
            tick(in, now);
            n++;
        }
        turn_end(w);
        for (uint32_t i = 0; i < w->ninsts; i++) {
            n += service(w->insts[i], now);
            turn_end(w);
        }
        fl__rbatch_flush(rt->pools, w->rb,
                         (size_t)(rt->nworkers + 1) * FL__NCLASSES);
        if (n) {
            atomic_fetch_add_explicit(&w->activity, 1, memory_order_relaxed);
            idle_since = 0;
            continue;
        }
#if RT_SPIN_NS > 0
        /* Idle: poll a short while (RT_SPIN_NS) before blocking, so
         * that a worker under load does not sleep and wake per message. */
        if (!atomic_load_explicit(&rt->stopping, memory_order_relaxed)) {
            if (idle_since == 0)
                idle_since = now;
            if (now - idle_since < RT_SPIN_NS) {
                cpu_relax();
                continue;
            }
        }
#endif
        idle_since = 0;
        worker_sleep(w);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Creation.                                                                */

void fl_run_opts_default(fl_run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->workers = 0;
    o->queue_capacity = 1024;
    o->dead_letter = "deadletter.jsonl";
    o->max_restarts = 5;
    o->restart_window_ms = 10000;
    o->time_scale = 1.0;
}

static uint32_t default_workers(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 && n < 1024 ? (uint32_t)n : 1;
}

static bool worker_add(rt_worker *w, rt_inst *in)
{
    if (w->ninsts == w->cap) {
        uint32_t ncap = w->cap ? w->cap * 2 : 8;
        rt_inst **n = realloc(w->insts, ncap * sizeof *n);
        if (!n)
            return false;
        w->insts = n;
        w->cap = ncap;
    }
    w->insts[w->ninsts++] = in;
    in->w = w;
    return true;
}

/* For each source, the upstream next hop of every stage reachable from it
 * through bidirectional edges only (breadth first: the shortest way back). */
static bool compute_hops(fl_runtime *rt)
{
    const fl_graph *g = rt->g;
    uint32_t *queue = malloc((g->nstages + 1) * sizeof *queue);
    if (!queue)
        return false;
    for (uint32_t s = 0; s < g->nsources; s++) {
        uint32_t head = 0, tail = 0, s0 = g->sources[s].stage;
        rt->stages[s0].hop[s] = HOP_SELF;
        queue[tail++] = s0;
        while (head < tail) {
            uint32_t u = queue[head++];
            for (uint32_t e = 0; e < g->nedges; e++) {
                const fl__edge *ed = &g->edges[e];
                if (ed->from != u || !ed->bidir || ed->to >= g->nstages)
                    continue;
                if (rt->stages[ed->to].hop[s] != HOP_NONE)
                    continue;
                rt->stages[ed->to].hop[s] = (int32_t)u;
                queue[tail++] = ed->to;
            }
        }
    }
    free(queue);
    return true;
}

static void runtime_destroy(fl_runtime *rt)
{
    if (!rt)
        return;
    fl__ctl_stop(rt->ctl); /* before anything its thread uses goes */
    for (uint32_t i = 0; i < rt->nstages; i++) {
        rt_stage *st = &rt->stages[i];
        for (uint32_t k = 0; st->insts && k < st->ninst; k++) {
            rt_inst *in = &st->insts[k];
            if (in->host)
                st->ops->destroy(in->host);
            fl__ring_fini(&in->inq);
            fl__ring_fini(&in->actq);
            free(in->out);
            free(in->dbuf);
            fl__kv_fini(&in->kv);
        }
        free(st->insts);
        free(st->down);
        free(st->hop);
        free(st->restart_ts);
        fl__swap_free(st->sw);
        pthread_mutex_destroy(&st->mu);
    }
    free(rt->stages);
    if (rt->net)
        fl__net_free(rt->net);
    fl__ctl_free(rt->ctl); /* after the links: their callbacks use it */
    for (uint32_t i = 0; rt->pools && i < (rt->nworkers + 1) * FL__NCLASSES;
         i++)
        fl__pool_fini(&rt->pools[i]);
    free(rt->pools);
    for (uint32_t i = 0; rt->workers && i < rt->nworkers; i++) {
        rt_worker *w = &rt->workers[i];
        free(w->insts);
        free(w->heap);
        free(w->stats);
        free(w->rb);
        free(w->wpend);
        free(w->wlist);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
    }
    free(rt->workers);
    free(rt->all);
    free(rt->dev_seq);
    free(rt->dead_letter);
    if (rt->dl)
        fclose(rt->dl);
    pthread_mutex_destroy(&rt->dl_mu);
    pthread_mutex_destroy(&rt->stats_mu);
    free(rt);
}

/* Node mode: which node this process is (a declared edge/cloud node or a
 * device of a group that connects to a node).  FL_ARG with a message when
 * the name is neither. */
static fl_status resolve_node(fl_runtime *rt, char *err, size_t errlen)
{
    const fl_graph *g = rt->g;
    for (uint32_t i = 0; i < g->nnodes; i++)
        if (strcmp(g->nodes[i].name, rt->o.node) == 0) {
            rt->node_layer = g->nodes[i].layer;
            return FL_OK;
        }
    for (uint32_t d = 0; d < g->ndevices; d++)
        if (strcmp(g->device_names[d], rt->o.node) == 0) {
            rt->node_layer = FL__LAYER_DEVICE;
            rt->node_dev = (int32_t)d;
            return FL_OK;
        }
    errf(err, errlen, "no node or device named \"%s\" in %s", rt->o.node,
         g->file);
    return FL_ARG;
}

/* Sets up stage `i`: ops, downstream list, hops array, restart ring. */
static fl_status stage_setup(fl_runtime *rt, uint32_t i, char *err,
                             size_t errlen)
{
    const fl_graph *g = rt->g;
    const fl__stage *d = &g->stages[i];
    rt_stage *st = &rt->stages[i];
    const fl__stage_ops *(*find)(const char *) =
        ops_lookup ? ops_lookup : fl__stage_ops_find;

    st->d = d;
    st->index = i;
    st->source = -1;
    pthread_mutex_init(&st->mu, NULL);
    atomic_init(&st->stopped, 0);
    st->ops = d->kind ? find(d->kind) : NULL;
    if (!st->ops || !st->ops->create || !st->ops->destroy) {
        errf(err, errlen, "stage %s: unknown kind '%s'", d->name,
             d->kind ? d->kind : "");
        return FL_CHECK;
    }
    st->device = d->layer == FL__LAYER_DEVICE;
    if (d->group >= 0 && (uint32_t)d->group < g->ngroups &&
        g->groups[d->group].layer != FL__LAYER_DEVICE)
        st->layer = g->groups[d->group].name;
    else
        st->layer = d->layer == FL__LAYER_DEVICE ? "device"
                    : d->layer == FL__LAYER_EDGE ? "edge"
                                                 : "cloud";
    st->ninst = d->ninstances ? d->ninstances : 1;
    st->only_dev = -1;
    if (rt->node_layer >= 0) { /* node mode: only this node's stages */
        if (rt->node_dev >= 0) {
            if (st->device && (uint32_t)rt->node_dev >= d->first_device &&
                (uint32_t)rt->node_dev - d->first_device < st->ninst) {
                st->only_dev = rt->node_dev;
                st->ninst = 1;
            } else {
                st->remote = true;
            }
        } else if (st->device || d->layer != (uint8_t)rt->node_layer) {
            st->remote = true;
        }
        if (st->remote)
            st->ninst = 0;
    }
    st->down = calloc(g->nedges + 1, sizeof *st->down);
    st->hop = malloc((g->nsources + 1) * sizeof *st->hop);
    st->restart_k = rt->o.max_restarts + 1 > RT_MAX_RESTART_RING
                        ? RT_MAX_RESTART_RING
                        : rt->o.max_restarts + 1;
    st->restart_ts = calloc(st->restart_k, sizeof *st->restart_ts);
    st->insts = calloc(st->ninst + 1, sizeof *st->insts);
    st->sw = fl__swap_new();
    if (!st->down || !st->hop || !st->restart_ts || !st->insts || !st->sw) {
        errf(err, errlen, "out of memory");
        return FL_NOMEM;
    }
    for (uint32_t s = 0; s < g->nsources; s++)
        st->hop[s] = HOP_NONE;
    for (uint32_t e = 0; e < g->nedges; e++) {
        const fl__edge *ed = &g->edges[e];
        if (ed->from >= g->nstages || ed->to >= g->nstages) {
            errf(err, errlen, "edge %u refers to no stage", (unsigned)e);
            return FL_ARG;
        }
        if (ed->from == i) {
            bool dup = false;
            for (uint32_t k = 0; k < st->ndown; k++)
                dup |= st->down[k] == ed->to;
            if (!dup)
                st->down[st->ndown++] = ed->to;
            if (ed->bidir)
                st->need_actq = true;
        }
        if (ed->to == i)
            st->has_up = true;
    }
    return FL_OK;
}

/* Node mode: does a stage feed a stage placed on another node? */
static bool down_remote(const fl_runtime *rt, const rt_stage *st)
{
    for (uint32_t k = 0; k < st->ndown; k++)
        if (rt->stages[st->down[k]].remote)
            return true;
    return false;
}

/* Sets up the source state of every instance of source s's stage. */
static fl_status source_setup(fl_runtime *rt, uint32_t s, char *err,
                              size_t errlen)
{
    const fl__source *src = &rt->g->sources[s];
    rt_stage *st = &rt->stages[src->stage];
    uint64_t period = src->interval_ns ? src->interval_ns
                                       : st->d->every_ns;
    if (st->source >= 0)
        return FL_OK; /* a stage sources at most one flow; the first wins */
    st->source = (int32_t)s;
    if (period)
        period = (uint64_t)((double)period / rt->o.time_scale);
    if (src->mode != FL__MODE_DEMAND && src->interval_ns + st->d->every_ns &&
        period == 0)
        period = 1;
    if (src->mode != FL__MODE_DEMAND && period == 0) {
        errf(err, errlen, "source %s: %s mode needs an interval",
             st->d->name, src->mode == FL__MODE_PUSH ? "push" : "pull");
        return FL_CHECK;
    }
    for (uint32_t k = 0; k < st->ninst; k++) {
        rt_inst *in = &st->insts[k];
        in->source = (int32_t)s;
        in->mode = src->mode;
        in->policy = src->policy;
        in->period = period;
        in->link_pull = src->mode == FL__MODE_PULL && rt->node_layer >= 0 &&
                        down_remote(rt, st);
        atomic_init(&in->asks, 0);
        if (src->mode == FL__MODE_DEMAND) {
            uint32_t c = src->credits ? src->credits : RT_DEFAULT_CREDITS;
            if (c > INT32_MAX / 2)
                c = INT32_MAX / 2;
            in->credits_init = (int32_t)c;
            atomic_init(&in->credits, (int32_t)c);
            in->dcap = src->policy == FL__POLICY_SAMPLE ? 1
                       : src->policy == FL__POLICY_DROP_OLDEST
                           ? (src->buffer ? src->buffer : 1)
                           : FL__MAX_EMITS;
            if (in->dcap > 65536)
                in->dcap = 65536;
            in->link_credit = rt->node_layer >= 0 && down_remote(rt, st);
            if (in->link_credit) /* granted by the consumer node */
                atomic_init(&in->credits, 0);
            in->dbuf = calloc(in->dcap, sizeof *in->dbuf);
            if (!in->dbuf) {
                errf(err, errlen, "out of memory");
                return FL_NOMEM;
            }
        }
    }
    return FL_OK;
}

/*
 * Builds the runtime (see flow.h): stages, instances and their queues,
 * workers and the assignment of instances to them, the actuation routes,
 * and runs every instance's init.  Returns FL_OK, FL_ARG, FL_CHECK (unknown
 * kind), FL_NOMEM or FL_STAGE (an init failed; err names the stage).
 */
fl_status fl_runtime_new(const fl_graph *g, const fl_run_opts *opts,
                         fl_runtime **out, char *err, size_t errlen)
{
    fl_runtime *rt;
    fl_status s = FL_NOMEM;
    uint32_t qcap, actcap, rr = 0;

    if (out)
        *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!g || !out) {
        errf(err, errlen, "no graph or output");
        return FL_ARG;
    }
    rt = calloc(1, sizeof *rt);
    if (!rt) {
        errf(err, errlen, "out of memory");
        return FL_NOMEM;
    }
    pthread_mutex_init(&rt->dl_mu, NULL);
    pthread_mutex_init(&rt->stats_mu, NULL);
    rt->g = g;
    if (opts)
        rt->o = *opts;
    else
        fl_run_opts_default(&rt->o);
    if (!rt->o.queue_capacity)
        rt->o.queue_capacity = 1024;
    if (!(rt->o.time_scale > 0))
        rt->o.time_scale = 1.0;
    if (!rt->o.restart_window_ms)
        rt->o.restart_window_ms = 10000;
    rt->nworkers = rt->o.workers ? rt->o.workers : default_workers();
    if (rt->nworkers > 256)
        rt->nworkers = 256;
    rt->dead_letter = strdup(rt->o.dead_letter ? rt->o.dead_letter
                                               : "deadletter.jsonl");
    qcap = rt->o.queue_capacity;
    actcap = qcap < RT_ACTQ_MAX ? qcap : RT_ACTQ_MAX;
    atomic_init(&rt->stopping, 0);
    atomic_init(&rt->quit, 0);

    rt->node_dev = -1;
    rt->node_layer = -1;
    if (rt->o.node) {
        s = resolve_node(rt, err, errlen);
        if (s != FL_OK) {
            runtime_destroy(rt);
            return s;
        }
    }
    rt->nstages = 0; /* stages set up so far (the teardown's bound) */
    rt->stages = calloc(g->nstages + 1, sizeof *rt->stages);
    rt->workers = calloc(rt->nworkers, sizeof *rt->workers);
    rt->pools = calloc((size_t)(rt->nworkers + 1) * FL__NCLASSES,
                       sizeof *rt->pools);
    rt->dev_seq = calloc(g->ndevices + 1, sizeof *rt->dev_seq);
    if (!rt->dead_letter || !rt->stages || !rt->workers || !rt->pools ||
        !rt->dev_seq)
        goto fail_nomem;
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        rt_worker *w = &rt->workers[i];
        pthread_condattr_t ca;
        w->rt = rt;
        w->id = i;
        pthread_mutex_init(&w->mu, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&w->cv, &ca);
        pthread_condattr_destroy(&ca);
        w->stats = calloc(g->nstages + 1, sizeof *w->stats);
        w->rb = calloc((size_t)(rt->nworkers + 1) * FL__NCLASSES,
                       sizeof *w->rb);
        w->wpend = calloc(rt->nworkers, sizeof *w->wpend);
        w->wlist = calloc(rt->nworkers, sizeof *w->wlist);
        if (!w->stats || !w->rb || !w->wpend || !w->wlist)
            goto fail_nomem;
    }
    for (uint32_t i = 0; i < g->nstages; i++) {
        rt->nstages = i + 1;
        s = stage_setup(rt, i, err, errlen);
        if (s != FL_OK)
            goto fail;
        rt->ninst += rt->stages[i].ninst;
    }
    for (uint32_t i = 0; i < g->nsources; i++) {
        if (g->sources[i].stage >= g->nstages) {
            errf(err, errlen, "source %u refers to no stage", (unsigned)i);
            s = FL_ARG;
            goto fail;
        }
    }
    if (!compute_hops(rt))
        goto fail_nomem;
    /* Actuation targets: stages with a bidirectional out-edge (they can be
     * a hop) and the final receivers (actuator or source) of every source. */
    for (uint32_t i = 0; i < g->nsources; i++) {
        uint32_t ss = g->sources[i].stage;
        int32_t a = g->stages[ss].actuator_idx;
        rt->stages[a >= 0 && (uint32_t)a < g->nstages ? (uint32_t)a : ss]
            .need_actq = true;
    }
    rt->all = calloc(rt->ninst + 1, sizeof *rt->all);
    if (!rt->all)
        goto fail_nomem;
    {
        uint32_t gid = 0;
        for (uint32_t i = 0; i < rt->nstages; i++) {
            rt_stage *st = &rt->stages[i];
            for (uint32_t k = 0; k < st->ninst; k++) {
                rt_inst *in = &st->insts[k];
                in->rt = rt;
                in->st = st;
                in->idx = k;
                in->gid = gid;
                rt->all[gid++] = in;
                in->device = st->only_dev >= 0 ? st->only_dev
                             : st->device ? (int32_t)(st->d->first_device + k)
                                          : -1;
                in->source = -1;
                in->heap_pos = UINT32_MAX;
                atomic_init(&in->busy, 0);
                atomic_init(&in->credits, 0);
                atomic_init(&in->inflight_max, 0);
                atomic_init(&in->noroute, 0);
                atomic_init(&in->park_req, 0);
                atomic_init(&in->parked, 0);
                in->version = 1;
                if (st->has_up && !fl__ring_init(&in->inq, qcap))
                    goto fail_nomem;
                if (st->need_actq && !fl__ring_init(&in->actq, actcap))
                    goto fail_nomem;
            }
        }
    }
    for (uint32_t i = 0; i < g->nsources; i++) {
        s = source_setup(rt, i, err, errlen);
        if (s != FL_OK)
            goto fail;
    }
    /* Pinning: the stages with few instances (edge, cloud: they see every
     * message) first, round-robin, so that two expensive stages land on
     * different workers; then the device instances, round-robin. */
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < rt->nstages; i++) {
            rt_stage *st = &rt->stages[i];
            if ((pass == 0) != !st->device)
                continue;
            for (uint32_t k = 0; k < st->ninst; k++)
                if (!worker_add(&rt->workers[rr++ % rt->nworkers],
                                &st->insts[k]))
                    goto fail_nomem;
        }
    }
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        rt_worker *w = &rt->workers[i];
        w->heap = calloc(w->ninsts + 1, sizeof *w->heap);
        if (!w->heap)
            goto fail_nomem;
    }
    /* Node mode: the version store; stages with a deployed active version
     * start on it (rt_ctl.c). */
    if (rt->o.node) {
        s = fl__ctl_new(rt, g, &rt->o, &rt->ctl, err, errlen);
        if (s != FL_OK)
            goto fail;
    }
    /* Instances and their init, in declaration order. */
    for (uint32_t i = 0; i < rt->ninst; i++) {
        rt_inst *in = rt->all[i];
        char e2[RT_ERRLEN];
        e2[0] = '\0';
        s = inst_create(in, e2, sizeof e2);
        if (s != FL_OK) {
            in->host = NULL;
            errf(err, errlen, "stage %s (%s): %s", in->st->d->name,
                 inst_name(in), e2[0] ? e2 : fl_status_msg(s));
            s = s == FL_NOMEM ? FL_NOMEM : FL_STAGE;
            goto fail;
        }
    }
    if (rt->o.node) {
        s = fl__net_new(rt, g, &rt->o, &rt->net, err, errlen);
        if (s != FL_OK)
            goto fail;
    }
    *out = rt;
    return FL_OK;

fail_nomem:
    s = FL_NOMEM;
    errf(err, errlen, "out of memory");
fail:
    runtime_destroy(rt);
    return s;
}

/* Starts the workers; the first ticks: push instances spread over one
 * period (devices are not synchronised), pull asks after one interval,
 * demand sources at once. */
fl_status fl_runtime_start(fl_runtime *rt)
{
    if (!rt)
        return FL_ARG;
    if (rt->started)
        return FL_ARG;
    rt->t0 = rt->rate_t = mono_ns();
    for (uint32_t i = 0; i < rt->ninst; i++) {
        rt_inst *in = rt->all[i];
        if (in->source < 0)
            continue;
        if (in->mode == FL__MODE_PUSH)
            in->next_due = rt->t0 + in->period * in->idx / in->st->ninst;
        else if (in->link_pull)
            continue; /* asked over the link, no timer */
        else if (in->mode == FL__MODE_PULL)
            in->next_due = rt->t0 + in->period;
        else
            in->next_due = rt->t0;
        heap_push(in->w, in);
    }
    rt->started = true;
    if (rt->net && fl__net_start(rt->net, NULL, 0) != FL_OK) {
        rt->joined = true;
        return FL_IO;
    }
    if (rt->ctl && fl__ctl_start(rt->ctl) != FL_OK) {
        rt->joined = true;
        return FL_NOMEM;
    }
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        rt_worker *w = &rt->workers[i];
        if (pthread_create(&w->th, NULL, worker_main, w) != 0) {
            atomic_store(&rt->quit, 1);
            for (uint32_t k = 0; k < i; k++) {
                rt_worker *o = &rt->workers[k];
                pthread_mutex_lock(&o->mu);
                pthread_cond_signal(&o->cv);
                pthread_mutex_unlock(&o->mu);
                pthread_join(o->th, NULL);
                o->running = false;
            }
            rt->joined = true;
            return FL_NOMEM;
        }
        w->running = true;
    }
    return FL_OK;
}

/* Nothing queued, no outbox waiting, every worker asleep. */
static bool quiescent(fl_runtime *rt)
{
    for (uint32_t i = 0; i < rt->nworkers; i++)
        if (!atomic_load(&rt->workers[i].sleeping))
            return false;
    for (uint32_t i = 0; i < rt->ninst; i++) {
        rt_inst *in = rt->all[i];
        if (fl__ring_depth(&in->inq) || fl__ring_depth(&in->actq) ||
            atomic_load_explicit(&in->busy, memory_order_relaxed))
            return false;
    }
    return true;
}

/*
 * Stops the sources, waits until what is in flight has drained (two quiet
 * observations 1 ms apart with no worker activity in between) or
 * timeout_ms has passed, then stops and joins the workers.  Returns FL_OK
 * after a complete drain, FL_STOPPED when the timeout cut it short.
 */
fl_status fl_runtime_stop(fl_runtime *rt, uint32_t timeout_ms)
{
    fl_status s = FL_OK;
    if (!rt)
        return FL_ARG;
    if (!rt->started || rt->joined)
        return FL_OK;
    fl__ctl_stop(rt->ctl); /* no swap may run while the workers stop */
    atomic_store(&rt->stopping, 1);
    if (rt->net)
        fl__net_pause(rt->net); /* no more messages taken from the links */
    for (uint32_t i = 0; i < rt->nworkers; i++)
        wake(NULL, &rt->workers[i]);
    uint64_t deadline = mono_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        uint64_t act[256] = {0};
        bool quiet = false;
        if (quiescent(rt)) {
            for (uint32_t i = 0; i < rt->nworkers; i++)
                act[i] = atomic_load(&rt->workers[i].activity);
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            quiet = quiescent(rt);
            for (uint32_t i = 0; quiet && i < rt->nworkers; i++)
                quiet = act[i] == atomic_load(&rt->workers[i].activity);
        }
        if (quiet)
            break;
        if (mono_ns() >= deadline) {
            s = FL_STOPPED;
            break;
        }
        struct timespec ts = {0, 500000};
        nanosleep(&ts, NULL);
    }
    atomic_store_explicit(&rt->quit, 1, memory_order_release);
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        rt_worker *w = &rt->workers[i];
        pthread_mutex_lock(&w->mu);
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    for (uint32_t i = 0; i < rt->nworkers; i++) {
        rt_worker *w = &rt->workers[i];
        if (w->running)
            pthread_join(w->th, NULL);
        w->running = false;
    }
    rt->joined = true;
    if (rt->net)
        fl__net_stop(rt->net); /* final acks, spools synced, BYE */
    return s;
}

void fl_runtime_free(fl_runtime *rt)
{
    if (!rt)
        return;
    if (rt->started && !rt->joined)
        fl_runtime_stop(rt, 1000);
    runtime_destroy(rt);
}

/* ------------------------------------------------------------------------ */
/* Figures.                                                                 */

uint32_t fl_runtime_stats(fl_runtime *rt, fl_stage_stats *out, uint32_t cap)
{
    uint64_t *acc;
    uint64_t now;
    double dt;
    bool rate_update;
    if (!rt)
        return 0;
    acc = malloc(FL__HIST_N * sizeof *acc);
    pthread_mutex_lock(&rt->stats_mu);
    now = mono_ns();
    dt = (double)(now - rt->rate_t) / 1e9;
    rate_update = dt >= 0.2;
    for (uint32_t i = 0; i < rt->nstages; i++) {
        rt_stage *st = &rt->stages[i];
        fl_stage_stats x;
        memset(&x, 0, sizeof x);
        x.name = st->d->name;
        x.layer = st->layer;
        if (acc)
            memset(acc, 0, FL__HIST_N * sizeof *acc);
        for (uint32_t k = 0; k < rt->nworkers; k++) {
            rt_stat *sc = &rt->workers[k].stats[i];
            x.in += cnt_get(&sc->in);
            x.out += cnt_get(&sc->out);
            x.actuations += cnt_get(&sc->act);
            x.dropped += cnt_get(&sc->dropped);
            x.errors += cnt_get(&sc->errors);
            x.traps += cnt_get(&sc->traps);
            x.restarts += cnt_get(&sc->restarts);
            if (acc)
                fl__hist_merge(acc, &sc->proc);
        }
        for (uint32_t k = 0; k < st->ninst; k++)
            x.queue_depth += (uint32_t)fl__ring_depth(&st->insts[k].inq);
        x.stopped = (uint8_t)atomic_load(&st->stopped);
        uint64_t count = st->source >= 0 && !st->has_up ? x.out : x.in;
        if (rate_update) {
            st->rate = (double)(count - st->rate_last) / dt;
            st->rate_last = count;
        }
        x.rate = st->rate;
        if (acc) {
            x.p50_us = fl__hist_quantile_us(acc, 0.50);
            x.p99_us = fl__hist_quantile_us(acc, 0.99);
        }
        if (i < cap && out)
            out[i] = x;
    }
    if (rate_update)
        rt->rate_t = now;
    pthread_mutex_unlock(&rt->stats_mu);
    free(acc);
    return rt->nstages;
}

void fl_runtime_totals(fl_runtime *rt, fl_run_stats *out)
{
    uint64_t *acc;
    memset(out, 0, sizeof *out);
    if (!rt)
        return;
    acc = calloc(FL__HIST_N, sizeof *acc);
    for (uint32_t k = 0; k < rt->nworkers; k++) {
        for (uint32_t i = 0; i < rt->nstages; i++) {
            rt_stat *sc = &rt->workers[k].stats[i];
            out->produced += cnt_get(&sc->produced);
            out->delivered += cnt_get(&sc->delivered);
            out->actuations += cnt_get(&sc->act_delivered);
            out->errors += cnt_get(&sc->errors);
            if (acc && rt->stages[i].ndown == 0)
                fl__hist_merge(acc, &sc->e2e);
        }
    }
    if (acc) {
        out->e2e_p50_us = fl__hist_quantile_us(acc, 0.50);
        out->e2e_p99_us = fl__hist_quantile_us(acc, 0.99);
    }
    free(acc);
}

uint32_t fl__rt_inflight_max(fl_runtime *rt, uint32_t stage)
{
    uint32_t m = 0;
    if (!rt || stage >= rt->nstages)
        return 0;
    for (uint32_t k = 0; k < rt->stages[stage].ninst; k++) {
        uint32_t v = atomic_load(&rt->stages[stage].insts[k].inflight_max);
        if (v > m)
            m = v;
    }
    return m;
}

uint64_t fl__rt_noroute(fl_runtime *rt, uint32_t stage)
{
    uint64_t n = 0;
    if (!rt || stage >= rt->nstages)
        return 0;
    for (uint32_t k = 0; k < rt->stages[stage].ninst; k++)
        n += cnt_get(&rt->stages[stage].insts[k].noroute);
    return n;
}

/* ------------------------------------------------------------------------ */
/* Node mode: the runtime side of rt_net.c.                                 */

int fl__rt_inject(fl_runtime *rt, const fl__wire *w, fl__tok *tok)
{
    rt_stage *t;
    rt_inst *d;
    fl__ring *q;
    fl__msg *m;
    if (w->stage >= rt->nstages)
        return -1;
    t = &rt->stages[w->stage];
    d = route(t, w->origin);
    if (!d)
        return -1;
    q = w->kind == FL__MSG_DATA ? &d->inq : &d->actq;
    if (!q->cells)
        return -1;
    if (fl__ring_depth(q) >= q->cap)
        return 1;
    m = fl__msg_alloc(&rt->pools[(size_t)rt->nworkers * FL__NCLASSES],
                      (uint16_t)rt->nworkers, w->len);
    if (!m)
        return 1;
    if (w->len)
        memcpy(m->data, w->data, w->len);
    m->len = w->len;
    m->kind = w->kind;
    m->origin = w->origin;
    m->src = w->src;
    m->seq = w->seq;
    m->ts = w->ts;
    m->t_in = mono_ns();
    m->topic_len = w->topic_len > FL__MAX_TOPIC ? FL__MAX_TOPIC : w->topic_len;
    memcpy(m->topic, w->topic, m->topic_len);
    m->topic[m->topic_len] = '\0';
    m->tok = tok;
    if (tok)
        atomic_fetch_add_explicit(&tok->live, 1, memory_order_relaxed);
    if (!fl__ring_push(q, m)) { /* only the pump pushes from links */
        msg_release(rt, NULL, m);
        return 1;
    }
    wake_now(d->w);
    return 0;
}

_Atomic uint64_t *fl__rt_dev_seq(fl_runtime *rt, uint32_t d)
{
    return d < rt->g->ndevices ? &rt->dev_seq[d] : NULL;
}

int32_t fl__rt_node_device(const fl_runtime *rt)
{
    return rt->node_dev;
}

int fl__rt_link_credit(fl_runtime *rt, uint32_t stage, int32_t delta)
{
    int n = 0;
    if (stage >= rt->nstages)
        return 0;
    for (uint32_t k = 0; k < rt->stages[stage].ninst; k++) {
        rt_inst *in = &rt->stages[stage].insts[k];
        if (!in->link_credit)
            continue;
        if (delta) {
            atomic_fetch_add_explicit(&in->credits, delta,
                                      memory_order_acq_rel);
            wake_now(in->w);
        }
        n++;
    }
    return n;
}

int fl__rt_link_ask(fl_runtime *rt, uint32_t stage, uint32_t asks)
{
    int n = 0;
    if (stage >= rt->nstages)
        return 0;
    for (uint32_t k = 0; k < rt->stages[stage].ninst; k++) {
        rt_inst *in = &rt->stages[stage].insts[k];
        if (!in->link_pull)
            continue;
        if (asks) {
            atomic_fetch_add_explicit(&in->asks, asks, memory_order_acq_rel);
            wake_now(in->w);
        }
        n++;
    }
    return n;
}

void fl_runtime_node_stats(fl_runtime *rt, fl_node_stats *out)
{
    memset(out, 0, sizeof *out);
    if (rt && rt->net)
        fl__net_counts(rt->net, &out->links_up, &out->msgs_in, &out->msgs_out,
                       &out->spooled);
}

/* ------------------------------------------------------------------------ */
/* Live update: the runtime side of rt_swap.c (see rt_int.h).               */

bool fl__rt_stage_info(fl_runtime *rt, const char *name, uint32_t *idx,
                       const fl__stage **decl, uint32_t *ninst,
                       bool *stopped, fl__swst **sw)
{
    for (uint32_t i = 0; rt && name && i < rt->nstages; i++) {
        rt_stage *st = &rt->stages[i];
        if (strcmp(st->d->name, name) != 0)
            continue;
        *idx = i;
        *decl = st->d;
        *ninst = st->ninst;
        *stopped = atomic_load(&st->stopped) != 0;
        *sw = st->sw;
        return true;
    }
    return false;
}

/*
 * Parks (ticket != 0) or unparks (0) every instance of a stage.  A parked
 * instance is left alone by its worker from its next message boundary on:
 * no call into its host, its queues fill (back-pressure as usual).  When
 * the workers do not run (before start, after stop) nothing needs waiting.
 */
fl_status fl__rt_park(fl_runtime *rt, uint32_t stage, uint32_t ticket,
                      uint32_t timeout_ms)
{
    rt_stage *st = &rt->stages[stage];
    bool live = rt->started && !rt->joined;
    for (uint32_t k = 0; k < st->ninst; k++)
        atomic_store_explicit(&st->insts[k].park_req, ticket,
                              memory_order_release);
    for (uint32_t k = 0; k < st->ninst; k++)
        wake_now(st->insts[k].w);
    if (!ticket || !live)
        return FL_OK;
    uint64_t deadline = mono_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (uint32_t k = 0; k < st->ninst;) {
        if (atomic_load_explicit(&st->insts[k].parked, memory_order_acquire) ==
            ticket) {
            k++;
            continue;
        }
        if (mono_ns() >= deadline) {
            fl__rt_park(rt, stage, 0, 0);
            return FL_STOPPED;
        }
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    return FL_OK;
}

fl_status fl__rt_prepare(fl_runtime *rt, uint32_t stage, uint32_t k,
                         fl__code *m, fl__inst *pre, uint32_t version,
                         uint32_t from, fl__inst **out, char *err,
                         size_t errlen)
{
    rt_stage *st = &rt->stages[stage];
    rt_inst *in = &st->insts[k];
    uint32_t saved = in->version;
    fl__inst *h = NULL;
    fl_status s;
    in->phase = PH_INIT;
    in->version = version;
    if (pre) { /* a wasm instance made before the pause: its init now */
        s = fl__wasm_init(st->d, pre, &host_api, in, err, errlen);
        if (s == FL_OK)
            h = pre;
    } else {
        s = fl__code_create(st->d, m, &host_api, in, &h, err, errlen);
    }
    if (s == FL_OK) {
        s = fl__code_migrate(st->d, h, (int32_t)from, err, errlen);
        if (s != FL_OK) {
            st->ops->destroy(h);
            h = NULL;
        }
    }
    in->phase = PH_IDLE;
    in->version = saved;
    *out = h;
    return s;
}

fl__inst *fl__rt_install(fl_runtime *rt, uint32_t stage, uint32_t k,
                         fl__inst *host, uint32_t version, uint32_t gen,
                         bool watching)
{
    rt_stage *st = &rt->stages[stage];
    rt_inst *in = &st->insts[k];
    fl__inst *old = in->host;
    in->host = host;
    in->version = version;
    in->gen = gen;
    in->watching = watching;
    return old;
}

fl__inst *fl__rt_inst_host(fl_runtime *rt, uint32_t stage, uint32_t k)
{
    return rt->stages[stage].insts[k].host;
}

fl__kv *fl__rt_inst_kv(fl_runtime *rt, uint32_t stage, uint32_t k)
{
    return &rt->stages[stage].insts[k].kv;
}

void fl__rt_host_destroy(fl_runtime *rt, uint32_t stage, fl__inst *host)
{
    if (host)
        rt->stages[stage].ops->destroy(host);
}

fl__swst *fl__rt_stage_swst(fl_runtime *rt, uint32_t i)
{
    return rt && i < rt->nstages ? rt->stages[i].sw : NULL;
}

bool fl__rt_stage_at(fl_runtime *rt, uint32_t i, const fl__stage **decl,
                     uint32_t *ninst)
{
    if (!rt || i >= rt->nstages)
        return false;
    *decl = rt->stages[i].d;
    *ninst = rt->stages[i].ninst;
    return true;
}

const char *fl__rt_node_name(const fl_runtime *rt)
{
    return rt ? rt->o.node : NULL;
}

fl__net *fl__rt_net(fl_runtime *rt) { return rt ? rt->net : NULL; }

fl__ctl *fl__rt_ctl(fl_runtime *rt) { return rt ? rt->ctl : NULL; }
