/*
 * rt_swap.c - live update of a stage's code inside a running runtime: the
 * all-or-nothing swap (park every instance at a message boundary, prepare
 * the new instances, install, release) and the automatic rollback of a
 * version that traps right after its switch, for wasm and native stages
 * (fl__code: either kind's module behind one handle).  runtime.c provides the
 * mechanism (rt_int.h); docs/RUNTIME.md "Live update" describes the design.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_int.h"

#define SW_FAILED_MAX 32      /* content hashes of rolled-back versions */
#define SW_PARK_TIMEOUT_MS 2000u

/* A stage's code as loaded for a swap: a wasm module or a native .so,
 * shared by reference (the swap state, prepared instances). */
struct fl__code {
    _Atomic uint32_t refs;
    bool native;
    fl__wmod *w;              /* wasm: one reference */
    fl__nmod *n;              /* native: one reference */
    /* wasm: the instance fl__code_load checked the module on, handed to
     * the first fl__code_instantiate (saves making another); owned. */
    _Atomic(fl__inst *) spare;
};

static fl__code *code_wrap(fl__wmod *w, fl__nmod *n)
{
    fl__code *c;
    if (!w && !n)
        return NULL;
    c = calloc(1, sizeof *c);
    if (!c) {
        fl__wasm_mod_release(w);
        fl__native_mod_release(n);
        return NULL;
    }
    atomic_init(&c->refs, 1);
    c->native = n != NULL;
    c->w = w;
    c->n = n;
    return c;
}

static bool kind_is(const fl__stage *d, const char *k)
{
    return d->kind && strcmp(d->kind, k) == 0;
}

bool fl__code_compatible(const fl__stage *d, const fl__code *c)
{
    return c->native ? kind_is(d, "native") : kind_is(d, "wasm");
}

fl_status fl__code_load(const fl__stage *d, const uint8_t *bytes, size_t len,
                        fl__code **out, char *err, size_t errlen)
{
    fl__wmod *w = NULL;
    fl__nmod *n = NULL;
    fl_status st;
    *out = NULL;
    fl__inst *spare = NULL;
    if (kind_is(d, "wasm"))
        st = fl__wasm_load(d, bytes, len, &w, &spare, err, errlen);
    else if (kind_is(d, "native"))
        st = fl__native_load(d, bytes, len, &n, err, errlen);
    else {
        snprintf(err, errlen,
                 "stage '%s' is not a wasm stage (nor a native one: kind "
                 "'%s'); only their code can be replaced",
                 d->name, d->kind ? d->kind : "?");
        return FL_ARG;
    }
    if (st != FL_OK)
        return st;
    *out = code_wrap(w, n);
    if (!*out) {
        fl__wasm_inst_free(spare);
        snprintf(err, errlen, "out of memory");
        return FL_NOMEM;
    }
    atomic_store(&(*out)->spare, spare);
    return FL_OK;
}

fl__code *fl__code_ref(fl__code *c)
{
    if (c)
        atomic_fetch_add(&c->refs, 1);
    return c;
}

void fl__code_release(fl__code *c)
{
    if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    fl__wasm_inst_free(atomic_load(&c->spare));
    fl__wasm_mod_release(c->w);
    fl__native_mod_release(c->n);
    free(c);
}

uint64_t fl__code_hash(const fl__code *c)
{
    if (!c)
        return 0;
    return c->native ? fl__native_mod_hash(c->n) : fl__wasm_mod_hash(c->w);
}

fl__code *fl__code_of_inst(const fl__stage *d, fl__inst *host)
{
    if (!host)
        return NULL;
    if (kind_is(d, "native"))
        return code_wrap(NULL, fl__native_inst_mod(host));
    if (kind_is(d, "wasm"))
        return code_wrap(fl__wasm_inst_mod(host), NULL);
    return NULL;
}

fl_status fl__code_create(const fl__stage *d, fl__code *c,
                          const if_host_api *api, void *ctx, fl__inst **out,
                          char *err, size_t errlen)
{
    if (c->native)
        return fl__native_create_mod(d, c->n, api, ctx, out, err, errlen);
    return fl__wasm_create_mod(d, c->w, api, ctx, out, err, errlen);
}

fl_status fl__code_instantiate(const fl__stage *d, fl__code *c,
                               fl__inst **out, char *err, size_t errlen)
{
    *out = NULL;
    if (c->native)
        return FL_OK;
    if ((*out = atomic_exchange(&c->spare, NULL)) != NULL)
        return FL_OK; /* the one the load checked: as good as new */
    return fl__wasm_instantiate(d, c->w, out, err, errlen);
}

fl_status fl__code_migrate(const fl__stage *d, fl__inst *in, int32_t from,
                           char *err, size_t errlen)
{
    if (kind_is(d, "native"))
        return fl__native_migrate(in, from, err, errlen);
    return fl__wasm_migrate(in, from, err, errlen);
}

/* One stage's swap state.  `mu` guards the fields without _Atomic and is
 * held only briefly (workers take it on a trap); `swap_mu` serialises
 * swaps of the stage and is held across the pause. */
struct fl__swst {
    pthread_mutex_t mu, swap_mu;
    fl__code *cur, *prev;     /* references; NULL: the declaration's file */
    uint32_t ver, prev_ver;
    uint64_t cur_hash;
    _Atomic uint32_t gen;     /* bumped by each rollback */
    _Atomic int watching;     /* inside the post-swap window */
    _Atomic uint64_t seen;    /* calls since the switch */
    _Atomic uint64_t t_switch;/* monotonic ns of the switch */
    _Atomic uint64_t t_first; /* monotonic ns of the first call after it */
    _Atomic uint32_t pol_traps, pol_msgs, pol_ms;
    uint32_t traps;           /* traps inside the window */
    uint32_t ticket;          /* last park ticket (under swap_mu) */
    fl_swap_state state;
    uint32_t last_ver, swaps, rollbacks, rejected;
    char reason[256];
    char rb_why[192];         /* last rollback: the trap's text */
    uint32_t rb_traps;        /* ... traps counted, calls made */
    uint64_t rb_calls;
    uint64_t failed[SW_FAILED_MAX];
    uint32_t nfailed;
};

static uint64_t sw_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

fl__swst *fl__swap_new(void)
{
    fl__swst *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->swap_mu, NULL);
    s->ver = 1;
    atomic_init(&s->gen, 0);
    atomic_init(&s->watching, 0);
    atomic_init(&s->seen, 0);
    atomic_init(&s->t_switch, 0);
    atomic_init(&s->t_first, 0);
    atomic_init(&s->pol_traps, 1);
    atomic_init(&s->pol_msgs, 100);
    atomic_init(&s->pol_ms, 5000);
    return s;
}

void fl__swap_free(fl__swst *s)
{
    if (!s)
        return;
    fl__code_release(s->cur);
    fl__code_release(s->prev);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->swap_mu);
    free(s);
}

/* The window is open while fewer than pol_msgs calls were made or less
 * than pol_ms passed since the switch. */
static bool window_open(fl__swst *s, uint64_t seen)
{
    uint64_t ms = (sw_mono() - atomic_load(&s->t_switch)) / 1000000ull;
    return seen < atomic_load_explicit(&s->pol_msgs, memory_order_relaxed) ||
           ms < atomic_load_explicit(&s->pol_ms, memory_order_relaxed);
}

bool fl__swap_seen(fl__swst *s)
{
    if (!s || !atomic_load_explicit(&s->watching, memory_order_relaxed))
        return false;
    uint64_t n = atomic_fetch_add_explicit(&s->seen, 1,
                                           memory_order_relaxed) + 1;
    if (n == 1) /* the new version's first call: the control plane's
                   "first" event (rt_ctl.c) */
        atomic_store(&s->t_first, sw_mono());
    if (window_open(s, n))
        return true;
    atomic_store(&s->watching, 0);
    return false;
}

uint32_t fl__swap_gen(fl__swst *s)
{
    return s ? atomic_load_explicit(&s->gen, memory_order_acquire) : 0;
}

fl__code *fl__swap_current(fl__swst *s, uint32_t *version, uint32_t *gen)
{
    fl__code *m = NULL;
    if (!s)
        return NULL;
    pthread_mutex_lock(&s->mu);
    if (s->cur)
        m = fl__code_ref(s->cur);
    *version = s->ver;
    *gen = atomic_load(&s->gen);
    pthread_mutex_unlock(&s->mu);
    return m;
}

/*
 * A trap of the stage.  Inside the window, the pol_traps-th trap rolls the
 * stage back: the previous version becomes current, the failed module's
 * hash is remembered (never swapped in again), the reason recorded, the
 * generation bumped (each instance reloads at its next boundary).  Returns
 * true when this trap did so.
 */
bool fl__swap_trap(fl__swst *s, const char *why)
{
    fl__code *bad = NULL;
    uint32_t from = 0, to = 0, ntraps = 0;
    uint64_t seen = 0;
    if (!s || !atomic_load(&s->watching))
        return false;
    pthread_mutex_lock(&s->mu);
    seen = atomic_load(&s->seen);
    if (!atomic_load(&s->watching) || !window_open(s, seen)) {
        atomic_store(&s->watching, 0);
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    ntraps = ++s->traps;
    if (ntraps < atomic_load(&s->pol_traps)) {
        pthread_mutex_unlock(&s->mu);
        return false;
    }
    atomic_store(&s->watching, 0);
    if (s->nfailed < SW_FAILED_MAX)
        s->failed[s->nfailed++] = s->cur_hash;
    bad = s->cur;
    from = s->ver;
    to = s->prev_ver;
    s->cur = s->prev;
    s->prev = NULL;
    s->ver = s->prev_ver;
    s->cur_hash = s->cur ? fl__code_hash(s->cur) : 0;
    s->state = FL_SWAP_ROLLED_BACK;
    snprintf(s->rb_why, sizeof s->rb_why, "%s", why ? why : "trap");
    s->rb_traps = ntraps;
    s->rb_calls = seen;
    s->rollbacks++;
    snprintf(s->reason, sizeof s->reason,
             "version %u trapped %u time(s) within %llu calls after the "
             "switch (%s); back to version %u",
             (unsigned)from, (unsigned)ntraps, (unsigned long long)seen,
             why ? why : "trap", (unsigned)to);
    fprintf(stderr, "isoflow: rollback: %s\n", s->reason);
    atomic_fetch_add_explicit(&s->gen, 1, memory_order_release);
    pthread_mutex_unlock(&s->mu);
    fl__code_release(bad); /* instances still running it hold theirs */
    return true;
}

/* ---- The swap. --------------------------------------------------------- */

/* Copies every entry of src into dst (empty); false when out of memory. */
static bool kv_clone(const fl__kv *src, fl__kv *dst)
{
    memset(dst, 0, sizeof *dst);
    for (uint32_t i = 0; i < src->cap; i++) {
        const fl__kv_ent *e = &src->slots[i];
        if (!e->block)
            continue;
        if (fl__kv_set(dst, (const char *)e->block, e->klen,
                       e->block + e->klen, e->vlen) != IF_OK) {
            fl__kv_fini(dst);
            return false;
        }
    }
    return true;
}

static void result_fail(fl__swst *sw, fl_swap_result *r, fl_status st,
                        uint32_t version, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* Records a refusal in the result and (when the stage exists) its status. */
static void result_fail(fl__swst *sw, fl_swap_result *r, fl_status st,
                        uint32_t version, const char *fmt, ...)
{
    va_list ap;
    r->status = st;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof r->reason, fmt, ap);
    va_end(ap);
    if (!sw)
        return;
    pthread_mutex_lock(&sw->mu);
    sw->state = FL_SWAP_REJECTED;
    sw->last_ver = version;
    sw->rejected++;
    snprintf(sw->reason, sizeof sw->reason, "%s", r->reason);
    pthread_mutex_unlock(&sw->mu);
}

/* result_fail for instance k of ninst that could not be made (st, why). */
static void instance_fail(fl__swst *sw, fl_swap_result *r, fl_status st,
                          uint32_t version, uint32_t k, uint32_t ninst,
                          const char *why)
{
    result_fail(sw, r, st == FL_NOMEM ? FL_NOMEM : FL_CHECK, version,
                "version %u refused: instance %u of %u: %s",
                (unsigned)version, (unsigned)k + 1, (unsigned)ninst,
                why[0] ? why : fl_status_msg(st));
}

static fl_status swap_in(fl_runtime *rt, const char *stage,
                         const uint8_t *wasm, size_t len, fl__code *code,
                         uint32_t version, fl_swap_result *r);

fl_status fl_runtime_swap(fl_runtime *rt, const char *stage,
                          const uint8_t *wasm, size_t len, uint32_t version,
                          fl_swap_result *out)
{
    fl_swap_result local;
    fl_swap_result *r = out ? out : &local;
    memset(r, 0, sizeof *r);
    if (!rt || !stage || (!wasm && len)) {
        result_fail(NULL, r, FL_ARG, version, "no runtime, stage or module");
        return FL_ARG;
    }
    return swap_in(rt, stage, wasm, len, NULL, version, r);
}

fl_status fl__swap_code(fl_runtime *rt, const char *stage, fl__code *code,
                        uint32_t version, fl_swap_result *out)
{
    memset(out, 0, sizeof *out);
    if (!rt || !stage || !code) {
        result_fail(NULL, out, FL_ARG, version, "no runtime, stage or code");
        return FL_ARG;
    }
    return swap_in(rt, stage, NULL, 0, code, version, out);
}

/*
 * The swap behind fl_runtime_swap and fl__swap_code: the module is either
 * bytes to load (code NULL) or code already loaded from them (a new
 * reference is taken; the caller keeps its own).  r is zeroed.
 */
static fl_status swap_in(fl_runtime *rt, const char *stage,
                         const uint8_t *wasm, size_t len, fl__code *code,
                         uint32_t version, fl_swap_result *r)
{
    uint32_t idx = 0, ninst = 0, gen;
    const fl__stage *d = NULL;
    bool stopped = false, watch;
    fl__swst *sw = NULL;
    fl__code *m = NULL, *prev = NULL;
    fl__inst **hosts = NULL, **pre = NULL;
    fl__kv *saved = NULL;
    uint32_t nsaved = 0;
    char why[256];
    uint64_t t0 = sw_mono(), tp;
    fl_status st;

    if (!fl__rt_stage_info(rt, stage, &idx, &d, &ninst, &stopped, &sw) ||
        !sw) {
        result_fail(NULL, r, FL_ARG, version, "no stage named '%s'", stage);
        return FL_ARG;
    }
    pthread_mutex_lock(&sw->swap_mu);
    pthread_mutex_lock(&sw->mu);
    r->version = r->from_version = sw->ver;
    pthread_mutex_unlock(&sw->mu);
    if (ninst == 0) {
        result_fail(sw, r, FL_ARG, version,
                    "stage '%s' has no instance here (it runs on another "
                    "node)", stage);
        goto out;
    }
    if (stopped) {
        result_fail(sw, r, FL_ARG, version,
                    "stage '%s' is stopped (restart intensity exceeded)",
                    stage);
        goto out;
    }
    why[0] = '\0';
    if (code) {
        if (!fl__code_compatible(d, code)) {
            result_fail(sw, r, FL_ARG, version,
                        "the code given is not a %s stage's", d->kind);
            goto out;
        }
        m = fl__code_ref(code);
        st = FL_OK;
    } else {
        st = fl__code_load(d, wasm, len, &m, why, sizeof why);
    }
    if (st != FL_OK) {
        result_fail(sw, r, st == FL_NOMEM ? FL_NOMEM : st == FL_ARG ? FL_ARG
                                                                    : FL_CHECK,
                    version, "%s", why);
        goto out;
    }
    {
        uint64_t h = fl__code_hash(m);
        bool failed = false;
        pthread_mutex_lock(&sw->mu);
        for (uint32_t i = 0; i < sw->nfailed; i++)
            failed |= sw->failed[i] == h;
        pthread_mutex_unlock(&sw->mu);
        if (failed) {
            result_fail(sw, r, FL_ARG, version,
                        "this module (hash %016llx) was rolled back on stage "
                        "'%s' before; it is not swapped in again",
                        (unsigned long long)h, stage);
            goto out;
        }
    }
    hosts = calloc(ninst, sizeof *hosts);
    pre = calloc(ninst, sizeof *pre);
    saved = calloc(ninst, sizeof *saved);
    if (!hosts || !pre || !saved) {
        result_fail(sw, r, FL_NOMEM, version, "out of memory");
        goto out;
    }
    /* The new instances (memory, segments) before the pause: only their
     * init and migrate, which may use the host's state, run inside it. */
    for (uint32_t k = 0; k < ninst; k++) {
        why[0] = '\0';
        st = fl__code_instantiate(d, m, &pre[k], why, sizeof why);
        if (st != FL_OK) {
            instance_fail(sw, r, st, version, k, ninst, why);
            goto out;
        }
    }
    r->prepare_us = (double)(sw_mono() - t0) / 1e3;

    /* The pause: every instance at a message boundary. */
    tp = sw_mono();
    if (++sw->ticket == 0)
        sw->ticket = 1;
    if (fl__rt_park(rt, idx, sw->ticket, SW_PARK_TIMEOUT_MS) != FL_OK) {
        result_fail(sw, r, FL_STOPPED, version,
                    "stage '%s': instances did not reach a message boundary "
                    "within %u ms",
                    stage, SW_PARK_TIMEOUT_MS);
        goto out;
    }
    for (uint32_t k = 0; k < ninst; k++) {
        if (!kv_clone(fl__rt_inst_kv(rt, idx, k), &saved[k])) {
            result_fail(sw, r, FL_NOMEM, version, "out of memory");
            goto undo;
        }
        nsaved = k + 1;
    }
    for (uint32_t k = 0; k < ninst; k++) {
        why[0] = '\0';
        st = fl__rt_prepare(rt, idx, k, m, pre[k], version, r->from_version,
                            &hosts[k], why, sizeof why);
        pre[k] = NULL; /* consumed */
        if (st != FL_OK) {
            instance_fail(sw, r, st, version, k, ninst, why);
            goto undo;
        }
    }
    /* All prepared: the previous code (for a rollback) and the switch. */
    pthread_mutex_lock(&sw->mu);
    if (sw->cur) {
        prev = sw->cur;
    } else {
        for (uint32_t k = 0; k < ninst && !prev; k++) {
            fl__inst *h = fl__rt_inst_host(rt, idx, k);
            if (h)
                prev = fl__code_of_inst(d, h);
        }
    }
    fl__code_release(sw->prev);
    sw->prev = prev;
    sw->prev_ver = sw->ver;
    sw->cur = m;
    m = NULL;
    sw->ver = version;
    sw->cur_hash = fl__code_hash(sw->cur);
    sw->traps = 0;
    atomic_store(&sw->seen, 0);
    atomic_store(&sw->t_first, 0);
    atomic_store(&sw->t_switch, sw_mono());
    watch = atomic_load(&sw->pol_traps) > 0;
    atomic_store(&sw->watching, watch ? 1 : 0);
    sw->state = watch ? FL_SWAP_WATCHING : FL_SWAP_ACTIVE;
    sw->last_ver = version;
    sw->swaps++;
    sw->reason[0] = '\0';
    gen = atomic_load(&sw->gen);
    pthread_mutex_unlock(&sw->mu);
    for (uint32_t k = 0; k < ninst; k++) /* hosts[k]: now the old one */
        hosts[k] = fl__rt_install(rt, idx, k, hosts[k], version, gen, watch);
    fl__rt_park(rt, idx, 0, 0);
    r->status = FL_OK;
    r->version = version;
    r->instances = ninst;
    r->pause_us = (double)(sw_mono() - tp) / 1e3;
    for (uint32_t k = 0; k < ninst; k++) { /* after the pause */
        fl__rt_host_destroy(rt, idx, hosts[k]);
        hosts[k] = NULL;
    }
    for (uint32_t k = 0; k < ninst; k++)
        fl__kv_fini(&saved[k]);
    goto out;

undo:
    /* Nothing changes: prepared hosts go, kv state written by a failed
     * init or migrate is put back, the instances carry on. */
    for (uint32_t k = 0; k < ninst; k++) {
        fl__rt_host_destroy(rt, idx, hosts[k]);
        hosts[k] = NULL;
        if (k < nsaved) {
            fl__kv *live = fl__rt_inst_kv(rt, idx, k);
            fl__kv_fini(live);
            *live = saved[k];
            memset(&saved[k], 0, sizeof saved[k]);
        }
    }
    fl__rt_park(rt, idx, 0, 0);
out:
    for (uint32_t k = 0; pre && k < ninst; k++)
        fl__rt_host_destroy(rt, idx, pre[k]);
    fl__code_release(m);
    free(hosts);
    free(pre);
    free(saved);
    pthread_mutex_unlock(&sw->swap_mu);
    return r->status;
}

void fl_runtime_swap_policy(fl_runtime *rt, const fl_swap_policy *p)
{
    for (uint32_t i = 0; rt && p; i++) {
        fl__swst *sw = fl__rt_stage_swst(rt, i);
        if (!sw)
            break;
        atomic_store(&sw->pol_traps, p->traps);
        atomic_store(&sw->pol_msgs, p->messages);
        atomic_store(&sw->pol_ms, p->window_ms);
    }
}

fl_status fl_runtime_swap_status(fl_runtime *rt, const char *stage,
                                 fl_swap_status *out)
{
    uint32_t idx, ninst;
    const fl__stage *d;
    bool stopped;
    fl__swst *sw = NULL;
    memset(out, 0, sizeof *out);
    if (!fl__rt_stage_info(rt, stage, &idx, &d, &ninst, &stopped, &sw) ||
        !sw)
        return FL_ARG;
    pthread_mutex_lock(&sw->mu);
    out->state = sw->state;
    if (out->state == FL_SWAP_WATCHING &&
        (!atomic_load(&sw->watching) ||
         !window_open(sw, atomic_load(&sw->seen))))
        out->state = FL_SWAP_ACTIVE;
    out->version = sw->ver;
    out->last_version = sw->last_ver;
    out->swaps = sw->swaps;
    out->rollbacks = sw->rollbacks;
    out->rejected = sw->rejected;
    out->calls_since_swap = atomic_load(&sw->seen);
    out->switch_ns = atomic_load(&sw->t_switch);
    out->first_call_ns = atomic_load(&sw->t_first);
    out->rollback_traps = sw->rb_traps;
    out->rollback_calls = sw->rb_calls;
    snprintf(out->rollback_trap, sizeof out->rollback_trap, "%s", sw->rb_why);
    snprintf(out->reason, sizeof out->reason, "%s", sw->reason);
    pthread_mutex_unlock(&sw->mu);
    return FL_OK;
}

/*
 * Sets the code stage `stage` starts with (before fl_runtime_start; its
 * instances must not exist yet): `bytes` as version `version`, validated
 * like a swap.  Used at start for the version a node's store says is
 * active.  FL_OK, or the refusal with err set; nothing changes then.
 */
fl_status fl__swap_preset(fl_runtime *rt, const char *stage,
                          const uint8_t *bytes, size_t len, uint32_t version,
                          char *err, size_t errlen)
{
    uint32_t idx, ninst;
    const fl__stage *d;
    bool stopped;
    fl__swst *sw = NULL;
    fl__code *m = NULL;
    if (!fl__rt_stage_info(rt, stage, &idx, &d, &ninst, &stopped, &sw) ||
        !sw) {
        snprintf(err, errlen, "no stage named '%s'", stage);
        return FL_ARG;
    }
    fl_status st = fl__code_load(d, bytes, len, &m, err, errlen);
    if (st != FL_OK)
        return st;
    pthread_mutex_lock(&sw->mu);
    fl__code_release(sw->cur);
    sw->cur = m;
    sw->ver = version;
    sw->last_ver = version;
    sw->cur_hash = fl__code_hash(m);
    pthread_mutex_unlock(&sw->mu);
    return FL_OK;
}
