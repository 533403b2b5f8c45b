/*
 * flow_int.h - structures shared inside the flow engine: the checked graph
 * (produced by parse.c/graph.c, consumed by the runtime) and the stage-host
 * interface (implemented by stage_wasm.c, stage_native.c, stage_builtin.c,
 * used by the runtime).  Nothing outside src/flow/ includes this file.
 *
 * Internal names use the prefix fl__ (public ones fl_).
 */
#ifndef ISOFLOW_FLOW_INT_H
#define ISOFLOW_FLOW_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flow.h"
#include "isoflow/stage.h" /* if_host_api, IF_CAP_* (sdk/include) */

/* ------------------------------------------------------------------------ */
/* The graph.                                                               */

typedef enum fl__layer {
    FL__LAYER_DEVICE = 0,
    FL__LAYER_EDGE = 1,
    FL__LAYER_CLOUD = 2
} fl__layer;

typedef enum fl__mode {
    FL__MODE_PUSH = 0,   /* the source produces on its schedule and sends at once */
    FL__MODE_PULL = 1,   /* the consumer asks at an interval; the source answers */
    FL__MODE_DEMAND = 2  /* the consumer grants credits; the source sends at
                            most what was granted */
} fl__mode;

typedef enum fl__policy {
    FL__POLICY_BLOCK = 0,       /* no credits: the source is not asked to produce */
    FL__POLICY_DROP_OLDEST = 1, /* no credits: produce, keep the newest `buffer` */
    FL__POLICY_SAMPLE = 2       /* no credits: produce, keep only the latest one */
} fl__policy;

/* A position in the flow file, for messages. */
typedef struct fl__pos {
    uint32_t line, col; /* 1-based */
    uint32_t len;       /* length of the offending token (for the underline) */
} fl__pos;

/* A group of nodes: device groups hold the devices that device-placed
 * stages run on ("devices rooms room-%02d x 10" style declarations). */
typedef struct fl__group {
    char *name;          /* e.g. "rooms" */
    uint8_t layer;       /* fl__layer */
    char *pattern;       /* printf-style name pattern with one %d/%02d, or a
                            plain name when count == 1 */
    uint32_t count;      /* number of nodes in the group */
    uint32_t first_device; /* global index of its first device (devices only) */
    char *connect;       /* devices: node every device of the group connects
                            to (`connect NODE`), or NULL */
    int32_t connect_idx; /* resolved index in nodes, or -1 */
    fl__pos connect_pos; /* the name after `connect` */
    fl__pos pos;
} fl__group;

/* A declared node (`node NAME @edge|@cloud [listen "HOST:PORT"] [connect
 * NODE]`): one process running the stages of its layer.  Every device of a
 * device group is a node of its own (named after the device). */
typedef struct fl__node {
    char *name;
    uint8_t layer;       /* FL__LAYER_EDGE or FL__LAYER_CLOUD */
    char *listen;        /* "host:port" it accepts the layer below on, or NULL */
    fl__pos listen_pos;
    char *connect;       /* node it connects to (the next layer), or NULL */
    int32_t connect_idx; /* resolved index in nodes, or -1 */
    fl__pos connect_pos;
    fl__pos pos;
} fl__node;

/* A declared stage. */
typedef struct fl__stage {
    char *name;
    uint8_t layer;       /* fl__layer of its placement */
    int32_t group;       /* index in groups when placed on a named group, else -1
                            (a device stage without a group runs on every device) */
    char *kind;          /* "wasm", "native" or a builtin name ("log", "jsonl"...) */
    char *path;          /* wasm/native: resolved file path; jsonl: output path; else NULL */
    char *config;        /* configuration string handed to init ("" when none) */
    char *actuator;      /* device stage receiving actuations for this source, or NULL */
    int32_t actuator_idx;/* resolved index of actuator, or -1 */
    uint64_t every_ns;   /* `every` schedule (push: produce period; pull: ask period;
                            demand: produce period), 0 when none */
    uint64_t fuel;       /* per-call fuel for wasm stages (0: runtime default) */
    uint32_t max_memory_pages; /* wasm memory cap (0: runtime default) */
    uint32_t ninstances; /* resolved: devices it runs on, or 1 */
    uint32_t first_device; /* device stages: global index of its first device */
    unsigned need_caps;  /* IF_CAP_* the stage's role needs (checked) */
    uint8_t node_mode;   /* the flow declares nodes: a jsonl sink skips a
                            message whose (origin, seq) it already wrote */
    fl__pos pos;
} fl__stage;

/* A link between two stages (after flattening serial/parallel blocks:
 * every exit of the left side connects to every entry of the right side;
 * links inside a serial block are bidirectional). */
typedef struct fl__edge {
    uint32_t from, to;   /* stage indices; messages flow from -> to */
    uint8_t bidir;       /* 1: actuations may travel to -> from */
    uint32_t flow;       /* index of the flow that declared it */
} fl__edge;

typedef struct fl__source {
    uint32_t stage;      /* stage index */
    uint8_t mode;        /* fl__mode */
    uint64_t interval_ns;/* push: produce period; pull: ask period; demand:
                            produce period (0 = as fast as credits allow) */
    uint32_t credits;    /* demand: credits granted at most at once (window) */
    uint8_t policy;      /* demand: fl__policy */
    uint32_t buffer;     /* demand drop-oldest: readings kept while waiting */
    uint32_t flow;
    fl__pos pos;
} fl__source;

typedef struct fl__flow {
    char *name;
    uint32_t source;     /* index in sources */
    fl__pos pos;
} fl__flow;

struct fl_graph {
    char *file;          /* flow file name as given */
    char *dir;           /* directory used to resolve relative paths */
    uint32_t ngroups;
    fl__group *groups;
    uint32_t nstages;
    fl__stage *stages;
    uint32_t nedges;
    fl__edge *edges;
    uint32_t nsources;
    fl__source *sources;
    uint32_t nflows;
    fl__flow *flows;
    uint32_t ndevices;   /* total devices over all device groups */
    char **device_names; /* ndevices names; origin id = index */
    uint32_t *device_slots; /* open-addressing hash of device_names: slot
                               -> device index + 1 (0 = empty); dev_cap
                               slots, a power of two >= 2 x ndevices
                               (fl__graph_device_index) */
    uint32_t dev_cap;
    uint32_t nnodes;     /* declared nodes (0: everything runs in one process) */
    fl__node *nodes;
};

/* Recomputes device indices and stage instance counts after a change of
 * group sizes (graph.c). */
fl_status fl__graph_resolve(fl_graph *g, char *err, size_t errlen);

/* The global index of the device named `name`, or -1 when no device has
 * that name: O(1) (a hash of device_names rebuilt by fl__graph_resolve;
 * with duplicate names, which a checked graph never has, the lowest index).
 * For the network side, which looks a peer up on every new link. */
int64_t fl__graph_device_index(const fl_graph *g, const char *name);

/* ------------------------------------------------------------------------ */
/* Stage hosts: one const table per kind.                                   */

typedef struct fl__inst fl__inst; /* opaque, owned by the stage host */

typedef struct fl__stage_ops {
    const char *kind;     /* "wasm", "native", "log", ... */
    const char *summary;  /* one line */
    const char *help;     /* --help-style text: what it does, its config syntax */
    /* Checks a declaration before anything runs: the file exists, the module
     * loads, it exports what `d->need_caps` requires, the config parses.
     * Returns FL_OK or FL_CHECK with a message (no position; the caller adds
     * it). */
    fl_status (*check)(const fl__stage *d, char *err, size_t errlen);
    /* Creates one instance and runs its init(config).  `api`/`ctx` are the
     * runtime's callbacks for this instance (borrowed; they outlive it).
     * `device` is the instance's device index (or -1).  On success *out is
     * owned by the caller (destroy). */
    fl_status (*create)(const fl__stage *d, const if_host_api *api, void *ctx,
                        int32_t device, fl__inst **out, char *err,
                        size_t errlen);
    /* Hands one message to the instance; emits happen through api->emit
     * during the call.  Returns FL_OK, FL_STAGE (the stage returned an
     * error) or FL_TRAP (err holds the trap's text, e.g. "out of fuel in
     * function process_reading"); after FL_TRAP the instance must be
     * destroyed and recreated. */
    fl_status (*process)(fl__inst *in, const uint8_t *msg, size_t len,
                         char *err, size_t errlen);
    /* Sources: produce what is ready (emits through api->emit). */
    fl_status (*produce)(fl__inst *in, char *err, size_t errlen);
    /* An actuation travelling upstream: FL_OK (handled; forwarded or not via
     * api->actuate) or FL_PASS (the stage does not handle actuations: the
     * runtime forwards it unchanged). */
    fl_status (*actuation)(fl__inst *in, const uint8_t *msg, size_t len,
                           char *err, size_t errlen);
    void (*destroy)(fl__inst *in);
} fl__stage_ops;

/* The registry: wasm, native and every builtin (stage_registry.c).  Returns
 * NULL for an unknown kind. */
const fl__stage_ops *fl__stage_ops_find(const char *kind);
/* All registered kinds, NULL-terminated (for `isoflow stages --help`). */
const fl__stage_ops *const *fl__stage_ops_all(void);

/* Limits of the stage ABI. */
#define FL__MAX_MSG (64u * 1024u)   /* largest message, bytes */
#define FL__MAX_TOPIC 31u
#define FL__MAX_EMITS 256u          /* emits per process/produce call */
#define FL__DEFAULT_FUEL 100000000u /* checkpoints per wasm call */
#define FL__DEFAULT_PAGES 256u      /* 16 MiB of linear memory per instance */

#endif /* ISOFLOW_FLOW_INT_H */
