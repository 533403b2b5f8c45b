/*
 * rt_int.h - internals of the flow runtime shared by runtime.c and its
 * helpers (rt_ring.c: bounded MPSC rings, message pools and latency
 * histograms; rt_kv.c: per-instance key-value state).  Also the two hooks
 * the runtime tests use.  Nothing outside src/flow/ and tests/flow/
 * includes this file; the design is described in docs/RUNTIME.md.
 */
#ifndef ISOFLOW_RT_INT_H
#define ISOFLOW_RT_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flow_int.h"

#define FL__CACHELINE 64

/* ------------------------------------------------------------------------ */
/* Bounded multi-producer single-consumer ring (Vyukov's bounded queue: one
 * sequence number per cell, C11 atomics, no lock).  Any capacity >= 1.     */

typedef struct fl__ring_cell {
    _Atomic size_t seq; /* cell turn: pos (free for push) or pos+1 (full) */
    void *data;
} fl__ring_cell;

typedef struct fl__ring {
    fl__ring_cell *cells; /* cap cells (owned) */
    size_t cap;
    char pad0[FL__CACHELINE];
    _Atomic size_t head;  /* next push position (producers) */
    char pad1[FL__CACHELINE];
    _Atomic size_t tail;  /* next pop position (the consumer) */
    char pad2[FL__CACHELINE];
} fl__ring;

/* Allocates the cells; returns false when out of memory. */
bool fl__ring_init(fl__ring *r, size_t cap);
void fl__ring_fini(fl__ring *r);
/* Pushes p; false when the ring is full (nothing changes).  Any thread. */
bool fl__ring_push(fl__ring *r, void *p);
/* Pops the oldest element or returns NULL.  The consumer thread only. */
void *fl__ring_pop(fl__ring *r);
/* Approximate number of elements (exact when no push/pop is running). */
size_t fl__ring_depth(const fl__ring *r);

/* ------------------------------------------------------------------------ */
/* Messages and their pools.                                                */

enum { FL__MSG_DATA = 0, FL__MSG_ACT = 1, FL__MSG_ACT_FINAL = 2 };
#define FL__NO_ORIGIN UINT32_MAX
#define FL__NCLASSES 3
/* Payload capacity of each size class. */
#define FL__CLASS0 256u
#define FL__CLASS1 4096u
#define FL__CLASS2 FL__MAX_MSG

typedef struct fl__msg {
    struct fl__msg *next;       /* free-list link (pool) */
    struct fl__msg *all_next;   /* every message of a pool, for the final free */
    _Atomic uint32_t refs;      /* holders: queues, outboxes, the processing stage */
    _Atomic uint32_t credit_holders; /* demand: consumers that still owe the credit */
    uint16_t owner;             /* worker whose pool it belongs to */
    uint8_t cls;                /* size class */
    uint8_t kind;               /* FL__MSG_* */
    uint8_t topic_len;
    uint32_t origin;            /* device index or FL__NO_ORIGIN */
    int32_t src;                /* graph source index that started the chain, or -1 */
    uint32_t credit_inst;       /* demand: global index of the source instance
                                   owed a credit, or UINT32_MAX */
    uint64_t seq;               /* per-origin sequence number */
    int64_t ts;                 /* wall clock at production, ns */
    uint64_t t_in;              /* monotonic clock at source emit, ns */
    struct fl__tok *tok;        /* node mode: the ingress message it derives
                                   from (one live count held), or NULL */
    char topic[FL__MAX_TOPIC + 1];
    uint32_t len;               /* payload bytes */
    uint8_t data[];             /* payload (class capacity) */
} fl__msg;

/* One worker's pool of one size class.  `free_` is used by the owner only;
 * other threads return messages through the lock-free `remote` stack, which
 * the owner empties with one exchange (no ABA: only the owner pops). */
typedef struct fl__pool {
    fl__msg *free_;             /* owner's free list */
    fl__msg *all;               /* every message allocated (owner) */
    size_t count;               /* messages allocated */
    char pad0[FL__CACHELINE];
    _Atomic(fl__msg *) remote;  /* returned by other threads */
    char pad1[FL__CACHELINE];
} fl__pool;

/* Largest number of messages one pool class may allocate (bounded pools). */
#define FL__POOL_MAX_SMALL (1u << 20)
#define FL__POOL_MAX_LARGE 4096u

/* Allocates a message of at least `len` payload bytes from `p` (the pools
 * of one worker, FL__NCLASSES of them); NULL when the class is exhausted or
 * memory is short.  refs = 1, other fields zero.  Owner thread only. */
fl__msg *fl__msg_alloc(fl__pool *pools, uint16_t owner, size_t len);
/* Returns a message whose last reference is gone to its owner's pool:
 * `pools` is the array of every worker's pools (stride FL__NCLASSES),
 * `self` the calling worker (or -1 for a non-worker thread). */
void fl__msg_recycle(fl__pool *pools, int32_t self, fl__msg *m);
/* A worker's pending returns to one other worker's pool of one class: a
 * chain pushed onto that pool's remote stack with a single CAS when it is
 * full (FL__RBATCH_MAX) or at the end of the worker's pass. */
#define FL__RBATCH_MAX 64u
typedef struct fl__rbatch {
    fl__msg *head, *tail;
    uint32_t n;
} fl__rbatch;

/* Like fl__msg_recycle for a worker `self` >= 0, but a message owned by
 * another worker goes into `batches` (self's array, nworkers * FL__NCLASSES
 * entries, indexed like `pools`) instead of straight onto the remote stack. */
void fl__msg_recycle_batched(fl__pool *pools, fl__rbatch *batches,
                             int32_t self, fl__msg *m);
/* Pushes every non-empty batch of `batches` (n entries) to its pool. */
void fl__rbatch_flush(fl__pool *pools, fl__rbatch *batches, size_t n);
/* Frees every message a pool ever allocated (runtime teardown). */
void fl__pool_fini(fl__pool *p);

/* ------------------------------------------------------------------------ */
/* Log-linear latency histogram: 8 sub-buckets per power of two, exact below
 * 8 ns, about 6% relative error.  One writer (a worker); readers use relaxed
 * loads and merge.                                                         */

#define FL__HIST_N 496

typedef struct fl__hist {
    _Atomic uint64_t b[FL__HIST_N];
} fl__hist;

void fl__hist_add(fl__hist *h, uint64_t ns);
/* Adds h into acc (plain counters). */
void fl__hist_merge(uint64_t *acc, const fl__hist *h);
/* The q-quantile (0..1) of a merged histogram, in microseconds (0 when
 * empty). */
double fl__hist_quantile_us(const uint64_t *acc, double q);

/* ------------------------------------------------------------------------ */
/* Per-instance key-value state (rt_kv.c): bounded, owned by the runtime so
 * that it survives a trap-restart of the stage instance.                   */

#define FL__KV_MAX_KEY 64u
#define FL__KV_MAX_VAL (64u * 1024u)
#define FL__KV_MAX_KEYS 4096u
#define FL__KV_MAX_BYTES (4u * 1024u * 1024u)

typedef struct fl__kv_ent {
    uint8_t *block;  /* key bytes then value bytes (owned), NULL: empty slot */
    uint32_t klen, vlen;
    uint32_t hash;
} fl__kv_ent;

typedef struct fl__kv {
    fl__kv_ent *slots; /* cap slots, linear probing (owned) */
    uint32_t cap;      /* 0 or a power of two */
    uint32_t count;
    size_t bytes;      /* keys + values held */
} fl__kv;

/* The if_kv_* semantics: get copies min(cap, vlen) bytes and returns vlen or
 * IF_ENOTFOUND; set returns IF_OK, IF_ETOOBIG (key/value too large),
 * IF_EINVAL (empty key) or IF_EFULL (limits); del returns IF_OK or
 * IF_ENOTFOUND. */
int fl__kv_get(const fl__kv *kv, const char *key, size_t klen, void *buf,
               size_t cap);
int fl__kv_set(fl__kv *kv, const char *key, size_t klen, const void *val,
               size_t vlen);
int fl__kv_del(fl__kv *kv, const char *key, size_t klen);
void fl__kv_fini(fl__kv *kv);

/* ------------------------------------------------------------------------ */
/* Node mode (rt_net.c, docs/NODES.md): remote edges and ingress tokens.    */

/* An ingress token: one per message taken over from a link.  `live` counts
 * the messages alive on this node that derive from it (the injected one
 * included); when it drops to 0 the message and everything it caused are
 * done here (processed, or appended to the next link's spool), and the
 * link's ack watermark may pass its seq.  Owned by rt_net.c. */
typedef struct fl__tok {
    _Atomic uint32_t live;
    uint64_t seq;               /* link sequence number */
    uint64_t act_seq;           /* device nodes: origin seq of a final
                                   actuation, else 0 */
    struct fl__tok *next;       /* FIFO of its link, in seq order */
} fl__tok;

/* A message as it crosses a link (fields borrowed). */
typedef struct fl__wire {
    uint32_t origin;            /* device index or FL__NO_ORIGIN */
    uint64_t seq;               /* per-origin seq */
    int64_t ts;
    uint16_t stage;             /* destination stage index */
    uint8_t kind;               /* FL__MSG_* */
    int32_t src;                /* graph source index, or -1 */
    const char *topic;
    uint8_t topic_len;
    const uint8_t *data;
    uint32_t len;
} fl__wire;

typedef struct fl__net fl__net;

/* Creates the network side of node `o->node` for runtime rt (links,
 * spools, state files; nothing runs yet).  FL_ARG/FL_IO with err on bad
 * names, certificates or state.  Caller frees with fl__net_free. */
fl_status fl__net_new(fl_runtime *rt, const fl_graph *g, const fl_run_opts *o,
                      fl__net **out, char *err, size_t errlen);
/* Starts the listener, the outgoing link and the pump thread. */
fl_status fl__net_start(fl__net *n, char *err, size_t errlen);
/* Takes no more messages from the links (before the runtime drains). */
void fl__net_pause(fl__net *n);
/* Stops: final acks, spools synced, BYE on every link, threads joined. */
void fl__net_stop(fl__net *n);
void fl__net_free(fl__net *n);
/* Hands one message for remote stage w->stage to its link's spool (any
 * worker thread).  Returns 0 (spooled), 1 (spool full: retry later) or -1
 * (no route: drop). */
int fl__net_send(fl__net *n, const fl__wire *w);
/* Drops one live count of a token (any thread). */
static inline void fl__tok_put(fl__tok *t)
{
    atomic_fetch_sub_explicit(&t->live, 1, memory_order_acq_rel);
}
/* Links up, messages in/out, for the status line. */
void fl__net_counts(fl__net *n, uint32_t *links_up, uint64_t *msgs_in,
                    uint64_t *msgs_out, uint64_t *spooled);

/* The runtime side, for rt_net.c's pump thread (the only caller):
 * pushes a message from a link into the destination instance's input queue
 * (data) or actuation queue; it holds one live count of tok.  Returns 0
 * (queued), 1 (queue full: retry later) or -1 (no such local instance:
 * dropped). */
int fl__rt_inject(fl_runtime *rt, const fl__wire *w, fl__tok *tok);
/* Device nodes: the per-origin seq counter of device d (for persistence). */
_Atomic uint64_t *fl__rt_dev_seq(fl_runtime *rt, uint32_t d);
/* The node's local device index, or -1 (edge/cloud nodes). */
int32_t fl__rt_node_device(const fl_runtime *rt);
/* Demand across links: adds delta (may be negative) to the credits of the
 * local instances of source stage `stage` whose credits come from the link
 * (a demand source feeding a remote stage) and wakes them.  Returns the
 * number of such instances (0: not a link-credited source here). */
int fl__rt_link_credit(fl_runtime *rt, uint32_t stage, int32_t delta);
/* Pull across links: `asks` asks (one produce() call each; 0: none) for
 * the local instances of pull source stage `stage` that feed a remote
 * stage.  Returns the number of such instances. */
int fl__rt_link_ask(fl_runtime *rt, uint32_t stage, uint32_t asks);

/* ------------------------------------------------------------------------ */
/* Live update (rt_swap.c, docs/RUNTIME.md "Live update").                  */

/* stage_wasm.c: a wasm module given as bytes, shared by reference.        */
typedef struct fl__wmod fl__wmod;
/* Validates `bytes` as a new version of wasm stage d (engine validation,
 * imports, ABI exports, the exports its role needs); FL_OK with a
 * reference, FL_ARG (not a wasm stage), FL_CHECK or FL_NOMEM with err.
 * spare (may be NULL): the instance the checks ran on, kept as
 * fl__wasm_instantiate would have made it, instead of freed. */
fl_status fl__wasm_load(const fl__stage *d, const uint8_t *bytes, size_t len,
                        fl__wmod **out, fl__inst **spare, char *err,
                        size_t errlen);
void fl__wasm_mod_release(fl__wmod *m);
fl__wmod *fl__wasm_mod_ref(fl__wmod *m); /* one more reference; returns m */
uint64_t fl__wasm_mod_hash(const fl__wmod *m); /* FNV-1a 64 of the bytes */
/* The module a wasm host instance runs, with a new reference. */
fl__wmod *fl__wasm_inst_mod(fl__inst *in);
/* Creates an instance of m for stage d and runs its init(config). */
fl_status fl__wasm_create_mod(const fl__stage *d, fl__wmod *m,
                              const if_host_api *api, void *ctx,
                              fl__inst **out, char *err, size_t errlen);
/* fl__wasm_create_mod in two steps, so that a swap instantiates before
 * its pause: the instance (memory, segments, exports checked) with no
 * host behind it, then init(config) with api/ctx (on failure the instance
 * is freed). */
fl_status fl__wasm_instantiate(const fl__stage *d, fl__wmod *m,
                               fl__inst **out, char *err, size_t errlen);
void fl__wasm_inst_free(fl__inst *in); /* NULL: nothing */
fl_status fl__wasm_init(const fl__stage *d, fl__inst *in,
                        const if_host_api *api, void *ctx, char *err,
                        size_t errlen);
/* Runs stage_migrate(from) when the module defines it (else FL_OK). */
fl_status fl__wasm_migrate(fl__inst *in, int32_t from, char *err,
                           size_t errlen);

/* rt_swap.c: one stage's swap state, owned by the runtime's stage.        */
typedef struct fl__swst fl__swst;
fl__swst *fl__swap_new(void);
void fl__swap_free(fl__swst *s);
/* Worker side.  One call handled while the instance watches: returns
 * whether the stage is still in its post-swap window. */
bool fl__swap_seen(fl__swst *s);
/* A trap: true when it makes the stage roll back (the generation moves on
 * and the current code becomes the previous version). */
bool fl__swap_trap(fl__swst *s, const char *why);
/* The rollback generation (an instance running another one reloads). */
uint32_t fl__swap_gen(fl__swst *s);
/* A stage's code for a swap, either kind (rt_swap.c): a wasm module or a
 * native .so's bytes behind one handle, shared by reference.             */
typedef struct fl__code fl__code;
/* The code instances run now: a reference (NULL: the declaration's file,
 * never swapped), its version and the generation. */
fl__code *fl__swap_current(fl__swst *s, uint32_t *version, uint32_t *gen);

/* runtime.c side, for rt_swap.c (not concurrently with stop/free).        */
/* Stage by name: index, declaration, local instances, stopped flag; false
 * when there is no such stage. */
bool fl__rt_stage_info(fl_runtime *rt, const char *name, uint32_t *idx,
                       const fl__stage **decl, uint32_t *ninst,
                       bool *stopped, fl__swst **sw);
/* Parks every instance of a stage at its next message boundary (ticket !=
 * 0) and waits for all acknowledgements, or unparks (ticket 0).  FL_OK, or
 * FL_STOPPED when the instances did not park within timeout_ms (they are
 * unparked again). */
fl_status fl__rt_park(fl_runtime *rt, uint32_t stage, uint32_t ticket,
                      uint32_t timeout_ms);
/* Parked instances only.  Makes instance k's new host from m, running
 * init then migrate(from) with if_meta(VERSION) = version.  pre: an
 * instance of m from fl__code_instantiate, made before the pause, which
 * this consumes (it becomes *out or is freed); NULL: created here. */
fl_status fl__rt_prepare(fl_runtime *rt, uint32_t stage, uint32_t k,
                         fl__code *m, fl__inst *pre, uint32_t version,
                         uint32_t from, fl__inst **out, char *err,
                         size_t errlen);
/* Installs a prepared host as instance k's; returns the old one, which
 * the caller destroys (fl__rt_host_destroy) once the pause is over. */
fl__inst *fl__rt_install(fl_runtime *rt, uint32_t stage, uint32_t k,
                         fl__inst *host, uint32_t version, uint32_t gen,
                         bool watching);
/* Instance k's host (may be NULL) and kv table. */
fl__inst *fl__rt_inst_host(fl_runtime *rt, uint32_t stage, uint32_t k);
fl__kv *fl__rt_inst_kv(fl_runtime *rt, uint32_t stage, uint32_t k);
/* Stage i's swap state, NULL past the last stage. */
fl__swst *fl__rt_stage_swst(fl_runtime *rt, uint32_t i);
/* Destroys a host of the stage's kind (a prepared one not installed). */
void fl__rt_host_destroy(fl_runtime *rt, uint32_t stage, fl__inst *host);

/* ------------------------------------------------------------------------ */
/* Live update of native stages, and the node's control plane (rt_ctl.c,
 * docs/DEPLOY.md "Deploying to running nodes: the node side").            */

/* stage_native.c: a native module's bytes, shared by reference.          */
typedef struct fl__nmod fl__nmod;
/* Checks `bytes` (copied) as a new version of native stage d: a private
 * copy loads, exports the ABI and what the stage's role needs.  FL_OK with
 * a reference, FL_ARG (not a native stage), FL_CHECK or FL_NOMEM. */
fl_status fl__native_load(const fl__stage *d, const uint8_t *bytes,
                          size_t len, fl__nmod **out, char *err,
                          size_t errlen);
fl__nmod *fl__native_mod_ref(fl__nmod *m);
void fl__native_mod_release(fl__nmod *m);
uint64_t fl__native_mod_hash(const fl__nmod *m); /* FNV-1a 64 of the bytes */
/* The module a native host instance runs, with a new reference. */
fl__nmod *fl__native_inst_mod(fl__inst *in);
/* Creates an instance (a private copy of m) and runs its init(config). */
fl_status fl__native_create_mod(const fl__stage *d, fl__nmod *m,
                                const if_host_api *api, void *ctx,
                                fl__inst **out, char *err, size_t errlen);
/* Runs stage_migrate(from) when the module defines it (else FL_OK). */
fl_status fl__native_migrate(fl__inst *in, int32_t from, char *err,
                             size_t errlen);

/* rt_swap.c: the kind-independent code handle (dispatch on d->kind).     */
fl_status fl__code_load(const fl__stage *d, const uint8_t *bytes, size_t len,
                        fl__code **out, char *err, size_t errlen);
fl__code *fl__code_ref(fl__code *c);
void fl__code_release(fl__code *c);
/* c was loaded for a stage of d's kind (wasm or native). */
bool fl__code_compatible(const fl__stage *d, const fl__code *c);
uint64_t fl__code_hash(const fl__code *c);
/* The code a host instance of d runs (new reference; NULL: not swappable). */
fl__code *fl__code_of_inst(const fl__stage *d, fl__inst *host);
fl_status fl__code_create(const fl__stage *d, fl__code *c,
                          const if_host_api *api, void *ctx, fl__inst **out,
                          char *err, size_t errlen);
fl_status fl__code_migrate(const fl__stage *d, fl__inst *in, int32_t from,
                           char *err, size_t errlen);
/* A wasm instance of c made ahead of a swap's pause (no init, no host):
 * FL_OK with *out, or with *out NULL for code that is created whole in
 * the pause (native); an error with err. */
fl_status fl__code_instantiate(const fl__stage *d, fl__code *c,
                               fl__inst **out, char *err, size_t errlen);
/* fl_runtime_swap with code already loaded by fl__code_load for this stage
 * (the control plane validates a module once and swaps that code in); the
 * caller keeps its reference. */
fl_status fl__swap_code(fl_runtime *rt, const char *stage, fl__code *code,
                        uint32_t version, fl_swap_result *out);
/* Before any instance of the stage exists: the stage starts on `bytes` as
 * version `version` instead of its declaration's file. */
fl_status fl__swap_preset(fl_runtime *rt, const char *stage,
                          const uint8_t *bytes, size_t len, uint32_t version,
                          char *err, size_t errlen);

/* runtime.c: stage i's declaration and local instance count (false past
 * the last stage); the node's name (NULL outside node mode); the network
 * side and the control plane (NULL when absent). */
bool fl__rt_stage_at(fl_runtime *rt, uint32_t i, const fl__stage **decl,
                     uint32_t *ninst);
const char *fl__rt_node_name(const fl_runtime *rt);
fl__net *fl__rt_net(fl_runtime *rt);
typedef struct fl__ctl fl__ctl;
fl__ctl *fl__rt_ctl(fl_runtime *rt);

/* rt_ctl.c: the control plane of a node (request queue, one control
 * thread; its state under its own mutex).                                  */
struct nt_conn;
struct nt_frame;
/* Opens the node's version store (STATE/NAME/deploy), loads the trusted
 * keys (o->trust), and presets every local stage whose store has an active
 * version (logged "stage S: running deployed version V (sha256 H)").
 * Called by fl_runtime_new before the stage instances exist.  On failure
 * err says why. */
fl_status fl__ctl_new(fl_runtime *rt, const fl_graph *g, const fl_run_opts *o,
                      fl__ctl **out, char *err, size_t errlen);
/* Starts the control thread (after the network side started). */
fl_status fl__ctl_start(fl__ctl *c);
/* Stops and joins the control thread; pending requests are dropped. */
void fl__ctl_stop(fl__ctl *c);
/* After the network side is freed (no more link callbacks). */
void fl__ctl_free(fl__ctl *c);
/* Link callbacks (loop thread, n->mu NOT held):
 * an accepted operator connection (0: accepted); */
int fl__ctl_on_open(fl__ctl *c, struct nt_conn *conn, const char *peer);
/* a frame: returns 1 when it is the control plane's (CTL, CTL_REPLY, or
 * anything from an operator connection, which is then closed), else 0; */
int fl__ctl_on_frame(fl__ctl *c, struct nt_conn *conn,
                     const struct nt_frame *f);
/* any connection closing (operator ones are forgotten, forwards over it
 * fail). */
void fl__ctl_on_close(fl__ctl *c, struct nt_conn *conn);

/* Tests and local callers: submits one request as if from an operator;
 * every reply's JSON (NUL-terminated, valid during the call) goes to fn on
 * the control thread.  FL_OK (queued) or FL_NOMEM. */
typedef void (*fl__ctl_reply_fn)(void *user, const char *json, size_t len);
fl_status fl__ctl_submit(fl__ctl *c, const char *json, size_t json_len,
                         const uint8_t *blob, size_t blob_len,
                         fl__ctl_reply_fn fn, void *user);
/* Tests: submits a request as if it came from a peer link that is neither
 * an operator nor this node's `down` peer (name, nt_role). */
fl_status fl__ctl_submit_peer(fl__ctl *c, const char *peer, int role,
                              const char *json, size_t json_len,
                              fl__ctl_reply_fn fn, void *user);

/* rt_net.c, for rt_ctl.c (n->mu taken inside; never with the ctl mutex
 * held by the caller while the loop thread could need it):
 * whether conn is the ready link to our `down` peer (1) or another peer's
 * (0: its name and role filled when known); */
int fl__net_ctl_peer(fl__net *n, struct nt_conn *conn, char *name,
                     size_t cap, int *role);
/* sends one encoded frame (data, then data2: a head from nt_put_ctl_head
 * and its blob) to the connected peer below called `name`: 0 sent
 * (*used: the connection), -1 no such node connects to us, -2 it is not
 * connected, -3 the send failed; */
int fl__net_ctl_send_peer(fl__net *n, const char *name, const uint8_t *data,
                          size_t len, const uint8_t *data2, size_t len2,
                          struct nt_conn **used);
/* sends one encoded frame to `down` if conn is still its ready link
 * (0 sent, -1 not). */
int fl__net_ctl_send_down(fl__net *n, struct nt_conn *conn,
                          const uint8_t *data, size_t len);

/* ------------------------------------------------------------------------ */
/* Hooks for the runtime tests.                                             */

/* Replaces the stage registry the next fl_runtime_new calls use (NULL: the
 * real one, fl__stage_ops_find).  Not thread-safe; tests only. */
void fl__rt_set_ops_lookup(const fl__stage_ops *(*find)(const char *kind));

/* The largest number of messages a demand source stage's instances ever had
 * in flight at once (sent, credit not yet returned), maxed over instances;
 * 0 for other stages. */
uint32_t fl__rt_inflight_max(fl_runtime *rt, uint32_t stage);

/* Actuations refused with IF_ENOROUTE by a stage (summed over instances). */
uint64_t fl__rt_noroute(fl_runtime *rt, uint32_t stage);

#endif /* ISOFLOW_RT_INT_H */
