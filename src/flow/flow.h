/*
 * flow.h - the public API of isoflow's flow engine: parse and check a .flow
 * file describing a whole device-edge-cloud dataflow, and run it.
 *
 * A flow file declares device groups, stages (placement, kind, config) and
 * flows that compose stages with ~> (one-way), <~> (bidirectional: actuation
 * messages travel back to the originating device), [a, b] (serial) and
 * {a, b} (parallel).  The runtime runs the stages on worker threads with
 * bounded queues between them.
 *
 * Ownership: a graph is owned by the caller (fl_graph_free); a runtime
 * borrows its graph, which must outlive it.
 */
#ifndef ISOFLOW_FLOW_H
#define ISOFLOW_FLOW_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FL_API __attribute__((visibility("default")))
#else
#define FL_API
#endif

/* Status codes, one table with names and messages. */
#define FL_STATUS_MAP(X)                                                     \
    X(OK, "ok")                                                              \
    X(SYNTAX, "syntax error")                                                \
    X(CHECK, "inconsistent flow")                                            \
    X(IO, "input/output error")                                              \
    X(NOMEM, "out of memory")                                                \
    X(STAGE, "stage error")                                                  \
    X(TRAP, "stage trapped")                                                 \
    X(PASS, "not handled")                                                   \
    X(ARG, "invalid argument")                                               \
    X(STOPPED, "stopped")

typedef enum fl_status {
#define FL__S(name, msg) FL_##name,
    FL_STATUS_MAP(FL__S)
#undef FL__S
    FL_STATUS_COUNT
} fl_status;

FL_API const char *fl_status_msg(fl_status s);

typedef struct fl_graph fl_graph;
typedef struct fl_runtime fl_runtime;

/* Parses a flow file and checks it: syntax, unknown stages, cycles, files
 * that do not exist, wasm/native stages lacking the exports their role
 * needs, placements on no layer.  Relative stage paths are resolved against
 * the flow file's directory.  On failure returns FL_SYNTAX / FL_CHECK /
 * FL_IO / FL_NOMEM and writes into err a message of the form
 *   FILE:LINE:COL: error: WHAT
 *     <the offending line>
 *     ^~~~~ expected ...
 * (several lines, NUL-terminated).  On success *out is owned by the caller. */
FL_API fl_status fl_graph_load(const char *path, fl_graph **out /* OUT */,
                               char *err, size_t errlen);
/* The same from text in memory; `name` is used in messages and `basedir`
 * resolves relative paths (NULL: the current directory).  With check_files
 * 0, stage files are not opened (used by the parser's fuzz target). */
FL_API fl_status fl_graph_parse(const char *name, const char *text,
                                size_t len, const char *basedir,
                                int check_files, fl_graph **out /* OUT */,
                                char *err, size_t errlen);
FL_API void fl_graph_free(fl_graph *g);

/* The graph's topology, for tools that address nodes (isoflow deploy,
 * isoflow demo).  A *place* is a node declared with `node` or a device of a
 * device group; names are borrowed from g.  Places are numbered: the
 * declared nodes first, in declaration order, then every device. */
typedef struct fl_place {
    const char *name;
    const char *layer;    /* "device", "edge" or "cloud" */
    const char *group;    /* a device: its group's name; a node: NULL */
    const char *listen;   /* "host:port" it listens on, or NULL */
    const char *connect;  /* the node it (a device: its group) connects
                             to, or NULL */
} fl_place;
FL_API uint32_t fl_graph_place_count(const fl_graph *g);
/* FL_OK, or FL_ARG when i is out of range. */
FL_API fl_status fl_graph_place(const fl_graph *g, uint32_t i,
                                fl_place *out /* OUT */);
/* The place called `name`: FL_OK, or FL_ARG when there is none. */
FL_API fl_status fl_graph_place_find(const fl_graph *g, const char *name,
                                     fl_place *out /* OUT */);
/* Stage `stage` (name, kind "wasm"/"native"/a builtin, layer): FL_OK, or
 * FL_ARG when there is no such stage. */
typedef struct fl_stage_desc {
    const char *name, *kind, *layer;
} fl_stage_desc;
FL_API fl_status fl_graph_stage_find(const fl_graph *g, const char *name,
                                     fl_stage_desc *out /* OUT */);
/* 1 when stage `stage` runs on place `place` (the place's layer, and its
 * group when the stage is placed on one), else 0. */
FL_API int fl_graph_stage_on(const fl_graph *g, const char *stage,
                             const char *place);

/* Overrides the number of devices of a device group (e.g. "rooms") before
 * the runtime starts; FL_ARG when there is no such group. */
FL_API fl_status fl_graph_set_devices(fl_graph *g, const char *group,
                                      uint32_t count);

/* Counts of a checked graph: stages, links (after flattening blocks) and
 * devices; any out pointer may be NULL. */
FL_API void fl_graph_counts(const fl_graph *g, uint32_t *stages /* OUT */,
                            uint32_t *links /* OUT */,
                            uint32_t *devices /* OUT */);

/* Prints the graph per layer (device, edge, cloud, named groups): stages,
 * instances, links and sources with their modes. */
FL_API void fl_graph_print(const fl_graph *g, FILE *out);

/* Stage kinds: "wasm", "native" and the builtins, NULL-terminated (static),
 * with a one-line summary and a --help-style text (config syntax included);
 * NULL for an unknown kind. */
FL_API const char *const *fl_stage_kinds(void);
FL_API const char *fl_stage_summary(const char *kind);
FL_API const char *fl_stage_help(const char *kind);

/* Modules compiled into the executable (stage_embed.c; the firmware-style
 * build isoflow-fw of bench/deploy/): fl_embed_module registers a .wasm's
 * bytes (borrowed for the life of the process: static data) under NAME,
 * before any flow is loaded; a flow then declares `wasm "embedded:NAME"`.
 * FL_OK, or FL_ARG (empty/long name or one holding '/', no bytes, NAME
 * taken by other bytes, table full).  fl_embed_find resolves a stage path
 * whose last component is "embedded:NAME": FL_PASS when it is not one (a
 * file), FL_OK with the bytes (outputs may be NULL), FL_IO with a message
 * in err (may be NULL) when NAME is not in this binary. */
FL_API fl_status fl_embed_module(const char *name, const uint8_t *bytes,
                                 size_t len);
FL_API fl_status fl_embed_find(const char *path, const uint8_t **bytes,
                               size_t *len, char *err, size_t errlen);

/* ------------------------------------------------------------------------ */
/* Running a flow.                                                          */

enum { FL_SYNC_NONE = 1, FL_SYNC_BATCH = 2, FL_SYNC_ALWAYS = 3 };

typedef struct fl_run_opts {
    uint32_t workers;          /* worker threads (0: number of cores) */
    uint32_t queue_capacity;   /* messages per stage input queue (default 1024) */
    const char *dead_letter;   /* dead-letter file (default "deadletter.jsonl") */
    uint32_t max_restarts;     /* restart intensity: at most this many ... */
    uint32_t restart_window_ms;/* ... restarts within this window (default 5 in 10000 ms) */
    double time_scale;         /* >1 runs source schedules faster (tests, benchmarks); default 1 */
    /* Node mode (docs/NODES.md): run only the part of the flow placed on
     * node `node` (a declared node or a device name) and link it to the
     * other nodes.  NULL: the whole flow in this process. */
    const char *node;          /* borrowed; NULL: no node mode */
    const char *certs;         /* directory with ca.crt, NODE.crt, NODE.key */
    int insecure;              /* 1: plaintext links (certs ignored) */
    const char *state_dir;     /* spools and watermarks under STATE/NODE/ (default "state") */
    /* Live update on a node (docs/DEPLOY.md "Deploying to running nodes:
     * the node side"): the trusted public keys (a dp_trust_load spec:
     * comma list of .pub files / directories).  NULL: every deploy is
     * rejected.  The version store is STATE/NODE/deploy. */
    const char *trust;         /* borrowed; NULL: no trusted keys */
    /* Node spools (docs/NODES.md "Durability"): the size bound of each
     * outgoing link's spool (0: 64 MiB), the sync policy (0: the
     * default, batch, or $ISOFLOW_SPOOL_SYNC; FL_SYNC_NONE, FL_SYNC_BATCH,
     * FL_SYNC_ALWAYS) and what a full spool does (0: refuse, back-pressure
     * to the sources; 1: drop the oldest records, counted). */
    uint64_t spool_max_bytes;
    int spool_sync;
    int spool_full;
} fl_run_opts;

FL_API void fl_run_opts_default(fl_run_opts *o /* OUT */);

/* Creates the runtime: instantiates every stage instance (and runs init).
 * `g` must outlive the runtime.  Caller frees with fl_runtime_free(). */
FL_API fl_status fl_runtime_new(const fl_graph *g, const fl_run_opts *opts,
                                fl_runtime **out /* OUT */, char *err,
                                size_t errlen);
/* Starts the workers and source schedules; returns at once. */
FL_API fl_status fl_runtime_start(fl_runtime *rt);
/* Stops sources, drains what is in flight (bounded by timeout_ms), stops
 * the workers.  Safe to call from a signal-handling thread. */
FL_API fl_status fl_runtime_stop(fl_runtime *rt, uint32_t timeout_ms);
FL_API void fl_runtime_free(fl_runtime *rt);

/* Per-stage figures, summed over the stage's instances. */
typedef struct fl_stage_stats {
    const char *name;       /* borrowed from the graph */
    const char *layer;      /* "device", "edge", "cloud" or the group name */
    uint64_t in, out;       /* messages processed / emitted */
    uint64_t actuations;    /* actuation messages handled or delivered */
    uint64_t dropped;       /* dropped by a source policy or a full queue */
    uint64_t errors;        /* returned errors + traps (dead-lettered) */
    uint64_t traps;
    uint64_t restarts;
    uint32_t queue_depth;   /* current input queue depth */
    uint8_t stopped;        /* stopped by the restart-intensity rule */
    double rate;            /* messages in per second over the last interval */
    double p50_us, p99_us;  /* processing latency */
} fl_stage_stats;

/* Fills up to cap entries (one per stage, in declaration order) and returns
 * the number of stages. */
FL_API uint32_t fl_runtime_stats(fl_runtime *rt, fl_stage_stats *out,
                                 uint32_t cap);

/* End-to-end figures of the whole runtime. */
typedef struct fl_run_stats {
    uint64_t produced;       /* messages emitted by sources */
    uint64_t delivered;      /* messages that reached a stage with no downstream */
    uint64_t actuations;     /* actuations delivered to a device */
    uint64_t errors;         /* dead-lettered messages */
    double e2e_p50_us, e2e_p99_us; /* source emit -> final stage done */
} fl_run_stats;
FL_API void fl_runtime_totals(fl_runtime *rt, fl_run_stats *out /* OUT */);

/* Node mode: links up, messages taken from links, messages handed to
 * links, records waiting in the spools (all 0 outside node mode). */
typedef struct fl_node_stats {
    uint32_t links_up;
    uint64_t msgs_in, msgs_out, spooled;
} fl_node_stats;
FL_API void fl_runtime_node_stats(fl_runtime *rt, fl_node_stats *out /* OUT */);

/* ------------------------------------------------------------------------ */
/* Live update (docs/RUNTIME.md "Live update"): one wasm stage's code is
 * replaced in a running runtime, between two messages of each instance,
 * with its kv state kept; a new version that traps soon after the switch
 * is rolled back by the runtime itself.  Not concurrently with
 * fl_runtime_stop/fl_runtime_free.                                        */

typedef enum fl_swap_state {
    FL_SWAP_NONE = 0,        /* never swapped: the declaration's file */
    FL_SWAP_WATCHING = 1,    /* swapped; inside the rollback window */
    FL_SWAP_ACTIVE = 2,      /* swapped; the window passed without failure */
    FL_SWAP_ROLLED_BACK = 3, /* the last version trapped: the previous runs */
    FL_SWAP_REJECTED = 4     /* the last swap was refused: nothing changed */
} fl_swap_state;

typedef struct fl_swap_result {
    fl_status status;        /* FL_OK: switched; else why it was refused */
    uint32_t version;        /* the version running after the call */
    uint32_t from_version;   /* the version it replaced (or still runs) */
    uint32_t instances;      /* instances switched */
    double prepare_us;       /* load + validate (before any pause) */
    double pause_us;         /* instances held at a message boundary while
                                their new instances were created, init and
                                migrate ran, and they were installed */
    char reason[256];        /* why refused ("" on success) */
} fl_swap_result;

/*
 * Replaces the code of wasm stage `stage` with the module `wasm` (len
 * bytes, borrowed) as version `version`.  A native stage takes the bytes of
 * a .so the same way (every instance loads a private copy of them; the
 * same guarantees, except that native code cannot trap: a crash takes the
 * process down, so there is nothing to roll back on).  Validates and loads the module,
 * then holds every instance of the stage at its next message boundary (the
 * message in flight finishes on the old code), creates one new instance per
 * instance, runs init(config) and migrate(from_version) if exported; only
 * when all succeed are they installed (the old ones destroyed) and the
 * instances released: the next message runs on the new code.  Any failure
 * changes nothing (kv state written by a failed init/migrate is restored).
 * Returns FL_OK or the refusal (FL_ARG: no such stage / not wasm / stage
 * stopped / a version rolled back before; FL_CHECK: invalid module or init
 * or migrate failed; FL_STOPPED: instances did not reach a boundary in
 * 2 s); `out` (may be NULL) gets the figures and the reason.
 */
FL_API fl_status fl_runtime_swap(fl_runtime *rt, const char *stage,
                                 const uint8_t *wasm, size_t len,
                                 uint32_t version,
                                 fl_swap_result *out /* OUT */);

/* The rollback rule: after a swap, `traps` traps (default 1) while fewer
 * than `messages` calls (default 100) were made or less than `window_ms`
 * (default 5000) passed since the switch send the stage back to its
 * previous version.  traps 0 disables rollback.  Applies to later swaps. */
typedef struct fl_swap_policy {
    uint32_t traps;
    uint32_t messages;
    uint32_t window_ms;
} fl_swap_policy;
FL_API void fl_runtime_swap_policy(fl_runtime *rt, const fl_swap_policy *p);

typedef struct fl_swap_status {
    fl_swap_state state;
    uint32_t version;        /* running now */
    uint32_t last_version;   /* last deployed (rolled back or refused one) */
    uint32_t swaps, rollbacks, rejected;
    uint64_t calls_since_swap; /* counted while watching */
    uint64_t switch_ns;      /* CLOCK_MONOTONIC ns of the last switch (0: none) */
    uint64_t first_call_ns;  /* ... of the first call after it (0: none yet;
                                counted while watching) */
    uint32_t rollback_traps; /* last rollback: traps counted, */
    uint64_t rollback_calls; /* calls made since its switch, */
    char rollback_trap[192]; /* and the trap's text ("" when none) */
    char reason[256];        /* last rollback or refusal, "" when none */
} fl_swap_status;
/* FL_OK, or FL_ARG when there is no such stage. */
FL_API fl_status fl_runtime_swap_status(fl_runtime *rt, const char *stage,
                                        fl_swap_status *out /* OUT */);

#ifdef __cplusplus
}
#endif
#endif /* ISOFLOW_FLOW_H */
