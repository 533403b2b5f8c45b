/*
 * cmd_deploy.c - the operator's live-update commands: `isoflow deploy`
 * (send a signed module to running nodes and follow each one until it is
 * healthy, rolled back or rejected), `isoflow versions` (a stage's history
 * on one node) and `isoflow rollback` (back to an earlier version).  They
 * speak the deploy control protocol (CTL / CTL_REPLY frames, docs/DEPLOY.md
 * "Deploying to running nodes") over TLS with an operator certificate.
 *
 * The targets and the address to reach each one come from the flow file
 * (flow.h's topology: fl_graph_place, fl_graph_stage_on).  A device is
 * reached through the node its group connects to, which forwards.
 */
#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "flow.h"
#include "net.h"

#define DPC_MAX_MODULE (NT_MAX_PAYLOAD - 70u * 1024u) /* room for the JSON */
#define DPC_MAX_SIG 4096u        /* larger is surely not a signature */
#define DPC_INFLIGHT 64u         /* requests in flight at once */
#define DPC_NAME 64

enum { W_FIRST = 0, W_SWAPPED = 1, W_HEALTHY = 2 };
enum { OP_DEPLOY = 0, OP_ROLLBACK = 1, OP_VERSIONS = 2 };

/* What became of one target. */
typedef enum dpc_outcome {
    O_NONE = 0,       /* not finished */
    O_OK,             /* healthy (or reached --wait's event) */
    O_ROLLED,         /* the node rolled the new version back */
    O_REJECTED,       /* refused by verification or validation */
    O_FAILED_INIT,    /* init/migrate failed: nothing changed */
    O_ERROR,          /* an error reply (refused, no such stage, ...) */
    O_UNREACH,        /* cannot connect, link lost, timed out */
    O_SKIPPED,        /* not tried: the canary failed */
    O__COUNT
} dpc_outcome;

/* A node the command connects to (a listening edge or cloud). */
typedef struct dpc_entry {
    struct dpc_ctx *ctx;
    char name[DPC_NAME];
    const char *addr;       /* borrowed from the graph */
    int role;               /* nt_role the node must present */
    nt_conn *conn;          /* NULL until needed (direct) */
    cli_agent_conn *agent;  /* or through the agent */
    int open, down, closed; /* down: an attempt failed or the link was lost */
    uint64_t start_ns;      /* when the connection was started */
    char why[256];          /* why it is down (REFUSE reason or close) */
} dpc_entry;

/* One node a request goes to. */
typedef struct dpc_target {
    char name[DPC_NAME];
    uint32_t entry;         /* index in ctx->entries */
    int sent;               /* the request is on its way */
    dpc_outcome outcome;
    uint64_t sent_ns;
    long long version;      /* version named by the replies (-1: none) */
    cJSON *reply;           /* versions: the final reply (owned) */
    char *reply_text;       /* versions --json: its text (owned) */
} dpc_target;

/* Everything one command run shares with the loop thread's callbacks. */
typedef struct dpc_ctx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int op, wait;
    const char *stage;
    const char *kind;         /* "wasm" / "native" (deploy) */
    char *sig;                /* signature text (owned, NUL-terminated) */
    const uint8_t *module;    /* borrowed */
    size_t module_len;
    long long to_version;     /* rollback --to (-1: the node decides) */
    uint32_t watch_ms;
    double timeout_s;
    dpc_entry *entries;
    uint32_t nentries;
    dpc_target *targets;
    uint32_t ntargets;
    uint32_t inflight;
    uint64_t t0;
    /* the batch run_batch is running: cb_open sends its requests at once */
    int batch_on;
    uint32_t batch_from, batch_to, batch_watch_ms;
    const char *agent_path;   /* through `isoflow agent` (NULL: direct) */
} dpc_ctx;

void cli_cmd_deploy_help(FILE *out)
{
    fprintf(out,
        "usage: isoflow deploy --flow FILE.flow (--node NAME | --layer "
        "device|edge|cloud\n"
        "                      | --group PATTERN) --stage STAGE MODULE\n"
        "                      [--sig MODULE.sig] [--certs DIR] [--as NAME]\n"
        "                      [--strategy all|canary] [--watch S] "
        "[--canary-time S]\n"
        "                      [--wait first|swapped|healthy] [--timeout S]\n"
        "                      [--agent PATH | --no-agent] [--json]\n\n"
        "Sends the signed module MODULE (.wasm, or a native .so) for stage\n"
        "STAGE to running nodes over their TLS control channel, with an\n"
        "operator certificate.  Each node verifies the signature against\n"
        "its trusted keys (`isoflow node --trust`), swaps the stage between\n"
        "two messages and watches the new version; a version that traps is\n"
        "rolled back by the node.  One line per event and node, then a\n"
        "summary.  Devices are reached through the node their group\n"
        "connects to.\n\n"
        "targets (the flow file names them and their addresses):\n"
        "  --node NAME       one node or device\n"
        "  --layer L         every device (device), or every edge/cloud node\n"
        "  --group PATTERN   devices and nodes whose name matches the shell\n"
        "                    pattern (room-*), or every device of a group\n\n"
        "options:\n"
        "  --sig FILE        the detached signature (default MODULE.sig)\n"
        "  --certs DIR       ca.crt, NAME.crt, NAME.key (default ./certs)\n"
        "  --as NAME         the operator certificate's name (default\n"
        "                    operator; `isoflow ca issue CA NAME --role\n"
        "                    operator`)\n"
        "  --strategy all    every target at once (%u in flight at most;\n"
        "                    the default)\n"
        "  --strategy canary the first target alone, healthy for\n"
        "                    --canary-time, then the rest; a failed canary\n"
        "                    stops the rollout\n"
        "  --watch S         how long each node watches the new version\n"
        "                    before it is healthy (default 2)\n"
        "  --canary-time S   the canary's watch (default --watch)\n"
        "  --wait W          a node is done at its first message on the new\n"
        "                    version (first), at the swap (swapped) or after\n"
        "                    the watch (healthy, the default)\n"
        "  --timeout S       give up on a node after S seconds (default\n"
        "                    --watch + 30)\n"
        "  --agent PATH      go through the `isoflow agent` on PATH (an\n"
        "                    error when none answers there); by default an\n"
        "                    agent on CERTS/NAME.agent is used when it runs\n"
        "  --no-agent        connect directly even when an agent runs\n"
        "  --json            one JSON object per line: each node's events\n"
        "                    as they come ({\"node\": ..., \"event\": ...};\n"
        "                    \"first\" carries at_ns, the node's\n"
        "                    CLOCK_MONOTONIC at that message), then a\n"
        "                    {\"summary\": ...} line\n\n"
        "exit status: 0 when every target ended ok, 1 when one did not\n"
        "(rolled back, rejected, unreachable, ...) or the module, signature\n"
        "or certificates cannot be used, 2 on a bad command line.\n"
        "examples:\n"
        "  isoflow deploy --flow home.flow --node room-03 --stage co2 "
        "co2.wasm\n"
        "  isoflow deploy --flow home.flow --group 'room-*' --stage co2 "
        "co2.wasm \\\n"
        "      --strategy canary --canary-time 10 --certs ops\n",
        DPC_INFLIGHT);
}

void cli_cmd_versions_help(FILE *out)
{
    fprintf(out,
        "usage: isoflow versions --flow FILE.flow --node NAME --stage STAGE\n"
        "                        [--certs DIR] [--as NAME] [--json] "
        "[--timeout S]\n"
        "                        [--agent PATH | --no-agent]\n\n"
        "Prints the history of STAGE on the running node NAME, oldest\n"
        "first: version, SHA-256 prefix, size, signer, time, outcome and\n"
        "reason; the active version is marked with '*'.  --json prints the\n"
        "node's reply as it came.  Options as for `isoflow deploy`.\n\n"
        "example: isoflow versions --flow home.flow --node room-03 "
        "--stage co2\n");
}

void cli_cmd_rollback_help(FILE *out)
{
    fprintf(out,
        "usage: isoflow rollback --flow FILE.flow --node NAME --stage STAGE\n"
        "                        [--to VERSION] [--certs DIR] [--as NAME]\n"
        "                        [--watch S] [--timeout S] [--json]\n"
        "                        [--agent PATH | --no-agent]\n\n"
        "Swaps STAGE on the running node NAME back to VERSION (default:\n"
        "the version active before the current one, see `isoflow\n"
        "versions`) and follows it like `isoflow deploy`.\n\n"
        "example: isoflow rollback --flow home.flow --node room-03 "
        "--stage co2 --to 2\n");
}

/* ------------------------------------------------------------------------ */
/* Reading the flow: targets and the node that reaches each one. */

/* Index of the entry for listening place `via`, added when missing; -1 on
 * error (message printed). */
static int entry_for(dpc_ctx *c, const fl_place *via)
{
    for (uint32_t i = 0; i < c->nentries; i++)
        if (strcmp(c->entries[i].name, via->name) == 0)
            return (int)i;
    dpc_entry *e = realloc(c->entries, (c->nentries + 1) * sizeof *e);
    if (!e) {
        cli_errf("out of memory");
        return -1;
    }
    c->entries = e;
    e = &c->entries[c->nentries];
    memset(e, 0, sizeof *e);
    e->ctx = c;
    snprintf(e->name, sizeof e->name, "%s", via->name);
    e->addr = via->listen;
    e->role = strcmp(via->layer, "cloud") == 0 ? NT_ROLE_CLOUD : NT_ROLE_EDGE;
    return (int)c->nentries++;
}

/*
 * Adds target `name` (a device or a declared node) after checking that
 * `stage` runs there and that some listening node reaches it.  Returns 0,
 * or CLI_EXIT_USAGE with the reason printed.  A name already listed is
 * skipped.
 */
static int add_target(dpc_ctx *c, const fl_graph *g, const fl_stage_desc *st,
                      const char *name)
{
    fl_place pl, via;
    for (uint32_t i = 0; i < c->ntargets; i++)
        if (strcmp(c->targets[i].name, name) == 0)
            return 0;
    if (fl_graph_place_find(g, name, &pl) != FL_OK) {
        cli_errf("no node or device named '%s' in the flow", name);
        return CLI_EXIT_USAGE;
    }
    if (!fl_graph_stage_on(g, st->name, name)) {
        cli_errf("stage %s does not run on %s %s", st->name,
                 pl.group ? "device" : "node", name);
        return CLI_EXIT_USAGE;
    }
    if (pl.group) { /* a device: through the node its group connects to */
        if (!pl.connect || fl_graph_place_find(g, pl.connect, &via) != FL_OK ||
            !via.listen) {
            cli_errf("device %s connects to no listening node: cannot reach "
                     "it", name);
            return CLI_EXIT_USAGE;
        }
    } else if (pl.listen) {
        via = pl;
    } else if (!pl.connect ||
               fl_graph_place_find(g, pl.connect, &via) != FL_OK ||
               !via.listen) {
        cli_errf("node %s listens nowhere and connects to no listening "
                 "node: cannot reach it", name);
        return CLI_EXIT_USAGE;
    }
    int e = entry_for(c, &via);
    if (e < 0)
        return CLI_EXIT_FAIL;
    dpc_target *t = realloc(c->targets, (c->ntargets + 1) * sizeof *t);
    if (!t) {
        cli_errf("out of memory");
        return CLI_EXIT_FAIL;
    }
    c->targets = t;
    t = &c->targets[c->ntargets++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->entry = (uint32_t)e;
    t->version = -1;
    return 0;
}

/*
 * Resolves the targets of --node / --layer / --group (exactly one is
 * non-NULL) for stage `st`, in the flow's order (devices, then nodes).
 * Returns 0 or a CLI_EXIT_* code with the reason printed.
 */
static int resolve_targets(dpc_ctx *c, const fl_graph *g,
                           const fl_stage_desc *st, const char *node,
                           const char *layer, const char *group)
{
    uint32_t np = fl_graph_place_count(g);
    fl_place pl;
    int rc = 0;
    if (node)
        return add_target(c, g, st, node);
    if (layer) {
        if (!cli_streq(layer, "device") && !cli_streq(layer, "edge") &&
            !cli_streq(layer, "cloud")) {
            cli_errf("--layer: expected device, edge or cloud, got '%s'",
                     layer);
            return CLI_EXIT_USAGE;
        }
        /* Devices (after the nodes in place order) or nodes. */
        for (uint32_t i = 0; i < np && !rc; i++)
            if (fl_graph_place(g, i, &pl) == FL_OK &&
                strcmp(pl.layer, layer) == 0)
                rc = add_target(c, g, st, pl.name);
    } else {
        /* A device group by name, then device names, then node names
         * matching the pattern. */
        for (uint32_t i = 0; i < np && !rc; i++)
            if (fl_graph_place(g, i, &pl) == FL_OK && pl.group &&
                strcmp(pl.group, group) == 0)
                rc = add_target(c, g, st, pl.name);
        for (uint32_t i = 0; i < np && !rc; i++)
            if (fl_graph_place(g, i, &pl) == FL_OK && pl.group &&
                fnmatch(group, pl.name, 0) == 0)
                rc = add_target(c, g, st, pl.name);
        for (uint32_t i = 0; i < np && !rc; i++)
            if (fl_graph_place(g, i, &pl) == FL_OK && !pl.group &&
                fnmatch(group, pl.name, 0) == 0)
                rc = add_target(c, g, st, pl.name);
    }
    if (!rc && c->ntargets == 0) {
        cli_errf("no node matches %s '%s'", layer ? "layer" : "group",
                 layer ? layer : group);
        rc = CLI_EXIT_USAGE;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Replies (loop thread, under ctx->mu). */

static double elapsed_s(uint64_t since)
{
    return (double)(cli_now_ns() - since) / 1e9;
}

static long long jnum(const cJSON *j, const char *key, long long dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : dflt;
}

static double jdbl(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

static const char *jstr(const cJSON *j, const char *key, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) && v->valuestring ? v->valuestring : dflt;
}

/* Marks t finished with outcome o (once). */
static void finish(dpc_ctx *c, dpc_target *t, dpc_outcome o)
{
    if (t->outcome != O_NONE)
        return;
    t->outcome = o;
    if (t->sent && c->inflight > 0)
        c->inflight--;
    pthread_cond_broadcast(&c->cv);
}

/* --json: prints o as one line (stdout, flushed). */
static void json_line(const cJSON *o)
{
    char *line = o ? cJSON_PrintUnformatted(o) : NULL;
    if (line)
        printf("%s\n", line);
    free(line);
    fflush(stdout);
}

/* deploy/rollback --json: every line a JSON object (dpc_json), and the
 * text of a node's event is not printed (dpc_quiet: the event itself is). */
static int dpc_json, dpc_quiet;

/* Prints one progress line "NAME: text" (stdout, flushed per line); with
 * --json {"node": NAME, "message": text}. */
static void say(const dpc_target *t, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void say(const dpc_target *t, const char *fmt, ...)
{
    va_list ap;
    if (dpc_quiet)
        return;
    if (dpc_json) {
        char text[1024];
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "node", t->name);
        cJSON_AddStringToObject(o, "message", text);
        json_line(o);
        cJSON_Delete(o);
        return;
    }
    printf("%s: ", t->name);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* --json: the node's event as it came, with "node" added. */
static void print_event(const dpc_target *t, cJSON *j)
{
    if (!cJSON_GetObjectItemCaseSensitive(j, "node")) /* a relay names it */
        cJSON_AddStringToObject(j, "node", t->name);
    json_line(j);
}

/*
 * Handles one CTL_REPLY for target t: prints the event's line and, on the
 * final reply (or the event --wait asks for), records the outcome.
 */
static void on_reply(dpc_ctx *c, dpc_target *t, const char *json,
                     size_t json_len)
{
    cJSON *j = cJSON_ParseWithLength(json, json_len);
    if (!j || !cJSON_IsObject(j)) {
        say(t, "ERROR: unreadable reply from the node");
        cJSON_Delete(j);
        finish(c, t, O_ERROR);
        return;
    }
    const char *ev = jstr(j, "event", "");
    const cJSON *fin = cJSON_GetObjectItemCaseSensitive(j, "final");
    int final = cJSON_IsTrue(fin);
    long long v = jnum(j, "version", -1);
    if (c->op == OP_VERSIONS) {
        if (final) {
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ok"))) {
                t->reply = j;
                t->reply_text = malloc(json_len + 1);
                if (t->reply_text) {
                    memcpy(t->reply_text, json, json_len);
                    t->reply_text[json_len] = '\0';
                }
                finish(c, t, O_OK);
                return;
            }
            say(t, "ERROR: %s", jstr(j, "error", jstr(j, "reason", "?")));
            finish(c, t, O_ERROR);
        }
        cJSON_Delete(j);
        return;
    }
    if (dpc_json) {
        print_event(t, j);
        dpc_quiet = 1;
    }
    /* The version deployed (or rolled back to) on this node, for the
     * summary: from the events that name it (not from refusals). */
    if (v >= 0 && (strcmp(ev, "verified") == 0 || strcmp(ev, "swapped") == 0 ||
                   strcmp(ev, "first") == 0 || strcmp(ev, "healthy") == 0 ||
                   strcmp(ev, "rolled-back") == 0 ||
                   strcmp(ev, "failed-init") == 0))
        t->version = v;
    if (strcmp(ev, "verified") == 0) {
        const char *h = jstr(j, "sha256", "?");
        say(t, "verified v%lld sha256 %.8s signed by %s", v, h,
            jstr(j, "signer", jstr(j, "key_id", "?")));
    } else if (strcmp(ev, "swapped") == 0) {
        double pre = jdbl(j, "prepare_us"), pause = jdbl(j, "pause_us");
        say(t, "swapped v%lld -> v%lld in %.1f ms (pause %.1f ms)",
            jnum(j, "from_version", -1), v, (pre + pause) / 1000.0,
            pause / 1000.0);
        if (c->wait == W_SWAPPED)
            finish(c, t, O_OK);
    } else if (strcmp(ev, "first") == 0) {
        say(t, "first message on v%lld after %.1f ms", v, jdbl(j, "ms"));
        if (c->wait == W_FIRST)
            finish(c, t, O_OK);
    } else if (strcmp(ev, "healthy") == 0) {
        say(t, "healthy after %.1f s (%lld calls)", elapsed_s(t->sent_ns),
            jnum(j, "calls", 0));
        finish(c, t, O_OK);
    } else if (strcmp(ev, "rolled-back") == 0) {
        say(t, "ROLLED BACK to v%lld: %s", jnum(j, "active", -1),
            jstr(j, "reason", "?"));
        finish(c, t, O_ROLLED);
    } else if (strcmp(ev, "rejected") == 0) {
        say(t, "REJECTED: %s", jstr(j, "reason", "?"));
        finish(c, t, O_REJECTED);
    } else if (strcmp(ev, "failed-init") == 0) {
        say(t, "FAILED INIT (nothing changed): %s", jstr(j, "reason", "?"));
        finish(c, t, O_FAILED_INIT);
    } else if (final) {
        const cJSON *ok = cJSON_GetObjectItemCaseSensitive(j, "ok");
        if (cJSON_IsTrue(ok)) {
            say(t, "%s", ev[0] ? ev : "done");
            finish(c, t, O_OK);
        } else {
            const char *e = jstr(j, "error", jstr(j, "reason", "?"));
            /* The entry node has no link to the target right now. */
            int down = strstr(e, " is not connected") != NULL;
            say(t, "%s: %s", down ? "UNREACHABLE" : "ERROR", e);
            finish(c, t, down ? O_UNREACH : O_ERROR);
        }
    } else {
        say(t, "%s", ev[0] ? ev : "(event without a name)");
    }
    dpc_quiet = 0;
    if (final && t->outcome == O_NONE)
        finish(c, t, O_ERROR);
    cJSON_Delete(j);
}

static int send_request(dpc_ctx *c, dpc_target *t, uint32_t watch_ms);

static int cb_open(void *user, nt_conn *conn, const char *peer, int role)
{
    dpc_entry *e = user;
    dpc_ctx *c = e->ctx;
    (void)peer, (void)role;
    pthread_mutex_lock(&c->mu);
    e->open = 1;
    if (!e->conn) /* connected before nt_connect returned */
        e->conn = conn;
    /* The requests go out from here, not after a round trip through the
     * command's thread (run_batch sends those this could not). */
    for (uint32_t i = c->batch_from; c->batch_on && i < c->batch_to; i++) {
        dpc_target *t = &c->targets[i];
        if (&c->entries[t->entry] == e && t->outcome == O_NONE && !t->sent &&
            c->inflight < DPC_INFLIGHT)
            send_request(c, t, c->batch_watch_ms);
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static void cb_frame(void *user, nt_conn *conn, const nt_frame *f)
{
    dpc_entry *e = user;
    dpc_ctx *c = e->ctx;
    char err[256];
    (void)conn;
    pthread_mutex_lock(&c->mu);
    if (f->type == NT_CTL_REPLY) {
        uint32_t id;
        const char *json;
        size_t jl, bl;
        const uint8_t *blob;
        if (nt_ctl_decode(f, &id, &json, &jl, &blob, &bl, err, sizeof err) ==
                NT_OK &&
            id >= 1 && id <= c->ntargets) {
            dpc_target *t = &c->targets[id - 1];
            if (t->entry == (uint32_t)(e - c->entries) && t->sent &&
                t->outcome == O_NONE)
                on_reply(c, t, json, jl);
        }
    } else if (f->type == NT_REFUSE) {
        if (nt_refuse_decode(f, e->why, sizeof e->why, err, sizeof err) !=
            NT_OK)
            snprintf(e->why, sizeof e->why, "refused");
    }
    pthread_mutex_unlock(&c->mu);
}

static void cb_close(void *user, nt_conn *conn, const char *reason)
{
    dpc_entry *e = user;
    (void)conn;
    pthread_mutex_lock(&e->ctx->mu);
    e->open = 0;
    e->down = 1;
    if (!e->why[0])
        snprintf(e->why, sizeof e->why, "%s", reason ? reason : "closed");
    pthread_cond_broadcast(&e->ctx->cv);
    pthread_mutex_unlock(&e->ctx->mu);
}

static const nt_callbacks dpc_callbacks = {cb_open, cb_frame, cb_close};

/* ------------------------------------------------------------------------ */
/* Sending. */

/* The request JSON for target t (malloc'ed; NULL when out of memory). */
static char *request_json(const dpc_ctx *c, const dpc_target *t,
                          uint32_t watch_ms)
{
    static const char *const ops[] = {"deploy", "rollback", "versions"};
    cJSON *j = cJSON_CreateObject();
    char *s = NULL;
    if (!j)
        return NULL;
    int bad = !cJSON_AddStringToObject(j, "op", ops[c->op]) ||
              !cJSON_AddStringToObject(j, "node", t->name) ||
              !cJSON_AddStringToObject(j, "stage", c->stage);
    if (c->op == OP_DEPLOY)
        bad |= !cJSON_AddStringToObject(j, "kind", c->kind) ||
               !cJSON_AddStringToObject(j, "sig", c->sig);
    if (c->op == OP_ROLLBACK && c->to_version >= 0)
        bad |= !cJSON_AddNumberToObject(j, "version",
                                        (double)c->to_version);
    if (c->op != OP_VERSIONS)
        bad |= !cJSON_AddNumberToObject(j, "watch_ms", watch_ms);
    if (!bad)
        s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

/*
 * Sends target t's request on its entry's connection (under ctx->mu).
 * Returns 1 sent, 0 not now (queue full: try again later), -1 failed
 * (outcome recorded).
 */
static int send_request(dpc_ctx *c, dpc_target *t, uint32_t watch_ms)
{
    nt_buf b;
    char *json = request_json(c, t, watch_ms);
    nt_status s;
    if (!json) {
        say(t, "ERROR: out of memory");
        finish(c, t, O_ERROR);
        return -1;
    }
    dpc_entry *e = &c->entries[t->entry];
    uint32_t id = (uint32_t)(t - c->targets) + 1;
    const uint8_t *blob = c->op == OP_DEPLOY ? c->module : NULL;
    size_t blen = c->op == OP_DEPLOY ? c->module_len : 0;
    nt_buf_init(&b, 0);
    if (e->agent) { /* the module goes out from where it was read */
        int r = cli_agent_send_ctl(e->agent, id, json, strlen(json), blob,
                                   blen);
        s = r == 0 ? NT_OK : r == -1 ? NT_ECLOSED : NT_EARG;
    } else { /* the head, then the module, queued together */
        s = nt_put_ctl_head(&b, NT_CTL, id, json, strlen(json), blob, blen);
        if (s == NT_OK)
            s = nt_conn_send2(e->conn, b.data, b.len, blob, blen);
    }
    free(json);
    nt_buf_free(&b);
    if (s == NT_OK) {
        t->sent = 1;
        t->sent_ns = cli_now_ns();
        c->inflight++;
        return 1;
    }
    if (s == NT_EFULL || s == NT_ECLOSED)
        return 0; /* later; a closed link shows up as down */
    say(t, "ERROR: cannot send the request: %s", nt_status_msg(s));
    finish(c, t, O_ERROR);
    return -1;
}

/* Starts the connection to entry e (directly, or through the agent) if
 * it has none yet.  Under c->mu (released around the connect). */
static void entry_start(dpc_ctx *c, dpc_entry *e, nt_loop *loop,
                        nt_tls *tls)
{
    char err[512];
    if (e->conn || e->agent || e->down)
        return;
    e->start_ns = cli_now_ns();
    pthread_mutex_unlock(&c->mu);
    nt_conn *conn = NULL;
    nt_status s;
    if (c->agent_path) /* sets e->agent before its callbacks run */
        s = cli_agent_connect(c->agent_path, e->addr, e->role,
                              &dpc_callbacks, e, &e->agent, err,
                              sizeof err) == 0 ? NT_OK : NT_ECLOSED;
    else
        s = nt_connect(loop, tls, e->addr, e->role, &dpc_callbacks, e,
                       &conn, err, sizeof err);
    pthread_mutex_lock(&c->mu);
    if (s != NT_OK) {
        e->down = 1;
        e->closed = 1;
        snprintf(e->why, sizeof e->why, "%.200s", err);
    } else if (!e->conn) {
        e->conn = conn;
    }
}

/*
 * Runs the requests of targets [from, to) to the end: connects to their
 * entry nodes (once per command run), sends at most DPC_INFLIGHT requests
 * at a time, waits for every final reply (or the --wait event), a lost
 * link or the timeout.  Outcomes are in the targets.
 */
static void run_batch(dpc_ctx *c, nt_loop *loop, nt_tls *tls, uint32_t from,
                      uint32_t to, uint32_t watch_ms)
{
    uint64_t tmo_ns = (uint64_t)(c->timeout_s * 1e9);
    pthread_mutex_lock(&c->mu);
    c->batch_on = 1;
    c->batch_from = from;
    c->batch_to = to;
    c->batch_watch_ms = watch_ms;
    for (uint32_t i = from; i < to; i++)
        entry_start(c, &c->entries[c->targets[i].entry], loop, tls);
    for (;;) {
        uint32_t left = 0;
        uint64_t now = cli_now_ns();
        for (uint32_t i = from; i < to; i++) {
            dpc_target *t = &c->targets[i];
            dpc_entry *e = &c->entries[t->entry];
            if (t->outcome != O_NONE)
                continue;
            if (e->down) {
                if (!t->sent)
                    say(t, "UNREACHABLE: cannot connect to %s (%s): %s",
                        e->name, e->addr, e->why);
                else
                    say(t, "UNREACHABLE: connection to %s lost before the "
                        "end: %s", e->name, e->why);
                finish(c, t, O_UNREACH);
                continue;
            }
            if (!t->sent) {
                if (!e->open && now - e->start_ns > tmo_ns) {
                    say(t, "UNREACHABLE: no connection to %s (%s) after "
                        "%.1f s", e->name, e->addr, c->timeout_s);
                    finish(c, t, O_UNREACH);
                    continue;
                }
                if (e->open && c->inflight < DPC_INFLIGHT &&
                    send_request(c, t, watch_ms) < 0)
                    continue;
            } else if (now - t->sent_ns > tmo_ns) {
                say(t, "UNREACHABLE: no final answer after %.1f s (timed "
                    "out)", c->timeout_s);
                finish(c, t, O_UNREACH);
                continue;
            }
            left++;
        }
        if (left == 0)
            break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    c->batch_on = 0;
    pthread_mutex_unlock(&c->mu);
    /* Stop the reconnection of links that went down (outside the lock:
     * nt_conn_close waits for the loop thread, which takes it). */
    for (uint32_t i = 0; i < c->nentries; i++) {
        dpc_entry *e = &c->entries[i];
        pthread_mutex_lock(&c->mu);
        int close_it = (e->conn || e->agent) && e->down && !e->closed;
        if (close_it)
            e->closed = 1;
        pthread_mutex_unlock(&c->mu);
        if (close_it && e->conn)
            nt_conn_close(e->conn);
        else if (close_it) {
            cli_agent_close(e->agent);
            pthread_mutex_lock(&c->mu);
            e->agent = NULL;
            pthread_mutex_unlock(&c->mu);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Command lines. */

typedef struct dpc_args {
    const char *flow, *node, *layer, *group, *stage, *module, *sig;
    const char *certs, *as, *strategy, *wait, *agent;
    double watch, canary_time, timeout;
    long long to;
    int json, no_agent;
} dpc_args;

/* Parses a number of seconds >= 0 for option `opt`; -1 when invalid. */
static double parse_secs(const char *opt, const char *v)
{
    char *end = NULL;
    double d = strtod(v, &end);
    if (!end || *end || !(d >= 0) || d > 86400) {
        cli_errf("%s: expected seconds (0 to 86400), got '%s'", opt, v);
        return -1;
    }
    return d;
}

/*
 * Parses the options shared by the three commands (`which` is the command's
 * name, for messages).  Returns 0, CLI_EXIT_USAGE, or -1 after --help was
 * printed.
 */
static int parse_args(int argc, char **argv, const char *which,
                      void (*help)(FILE *), dpc_args *a)
{
    memset(a, 0, sizeof *a);
    a->certs = "certs";
    a->as = "operator";
    a->strategy = "all";
    a->wait = "healthy";
    a->watch = 2;
    a->canary_time = -1;
    a->timeout = -1;
    a->to = -1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_streq(o, "--help") || cli_streq(o, "-h")) {
            help(stdout);
            return -1;
        }
        if (cli_streq(o, "--json")) {
            a->json = 1;
            continue;
        }
        if (cli_streq(o, "--no-agent")) {
            a->no_agent = 1;
            continue;
        }
        if (o[0] != '-' || o[1] == '\0') {
            if (a->module || !cli_streq(which, "deploy")) {
                cli_errf("%s: unexpected argument '%s' (see 'isoflow %s "
                         "--help')", which, o, which);
                return CLI_EXIT_USAGE;
            }
            a->module = o;
            continue;
        }
        if (!v) {
            cli_errf("%s: option %s needs a value", which, o);
            return CLI_EXIT_USAGE;
        }
        i++;
        int dep = cli_streq(which, "deploy");
        int rb = cli_streq(which, "rollback");
        if (cli_streq(o, "--flow"))
            a->flow = v;
        else if (cli_streq(o, "--node"))
            a->node = v;
        else if (cli_streq(o, "--stage"))
            a->stage = v;
        else if (cli_streq(o, "--certs"))
            a->certs = v;
        else if (cli_streq(o, "--as"))
            a->as = v;
        else if (cli_streq(o, "--agent"))
            a->agent = v;
        else if (cli_streq(o, "--timeout")) {
            if ((a->timeout = parse_secs(o, v)) < 0)
                return CLI_EXIT_USAGE;
            if (a->timeout == 0) {
                cli_errf("--timeout: expected seconds > 0");
                return CLI_EXIT_USAGE;
            }
        } else if (dep && cli_streq(o, "--layer"))
            a->layer = v;
        else if (dep && cli_streq(o, "--group"))
            a->group = v;
        else if (dep && cli_streq(o, "--sig"))
            a->sig = v;
        else if (dep && cli_streq(o, "--strategy"))
            a->strategy = v;
        else if (dep && cli_streq(o, "--wait"))
            a->wait = v;
        else if ((dep || rb) && cli_streq(o, "--watch")) {
            if ((a->watch = parse_secs(o, v)) < 0)
                return CLI_EXIT_USAGE;
        } else if (dep && cli_streq(o, "--canary-time")) {
            if ((a->canary_time = parse_secs(o, v)) < 0)
                return CLI_EXIT_USAGE;
        } else if (rb && cli_streq(o, "--to")) {
            char *end = NULL;
            errno = 0;
            a->to = strtoll(v, &end, 10);
            if (errno || !end || *end || a->to < 0) {
                cli_errf("--to: expected a version number, got '%s'", v);
                return CLI_EXIT_USAGE;
            }
        } else {
            cli_errf("%s: unknown option '%s' (see 'isoflow %s --help')",
                     which, o, which);
            return CLI_EXIT_USAGE;
        }
    }
    if (a->agent && a->no_agent) {
        cli_errf("%s: --agent and --no-agent exclude each other", which);
        return CLI_EXIT_USAGE;
    }
    if (!a->flow || !a->stage) {
        cli_errf("%s needs --flow FILE and --stage STAGE (see 'isoflow %s "
                 "--help')", which, which);
        return CLI_EXIT_USAGE;
    }
    if (cli_streq(which, "deploy")) {
        int n = !!a->node + !!a->layer + !!a->group;
        if (n != 1) {
            cli_errf("deploy needs exactly one of --node, --layer, --group");
            return CLI_EXIT_USAGE;
        }
        if (!a->module) {
            cli_errf("deploy needs the MODULE file (see 'isoflow deploy "
                     "--help')");
            return CLI_EXIT_USAGE;
        }
    } else if (!a->node) {
        cli_errf("%s needs --node NAME", which);
        return CLI_EXIT_USAGE;
    }
    if (!cli_streq(a->strategy, "all") && !cli_streq(a->strategy, "canary")) {
        cli_errf("--strategy: expected all or canary, got '%s'", a->strategy);
        return CLI_EXIT_USAGE;
    }
    if (!cli_streq(a->wait, "first") && !cli_streq(a->wait, "swapped") &&
        !cli_streq(a->wait, "healthy")) {
        cli_errf("--wait: expected first, swapped or healthy, got '%s'",
                 a->wait);
        return CLI_EXIT_USAGE;
    }
    if (a->canary_time < 0)
        a->canary_time = a->watch;
    if (a->timeout < 0)
        a->timeout = (a->watch > a->canary_time ? a->watch : a->canary_time) +
                     30;
    return 0;
}

/* The operator's TLS identity from --certs/--as, made by open_identity
 * (NULL with the reason in err). */
typedef struct dpc_identity {
    const dpc_args *a;
    nt_tls *tls;
    char err[3 * 1024 + 600];
    pthread_t th;
    int started;
} dpc_identity;

static void *open_identity(void *arg)
{
    dpc_identity *id = arg;
    const dpc_args *a = id->a;
    char ca[1024], crt[1024], key[1024], err[512];
    nt_tls_process_init(); /* main left it to this thread */
    snprintf(ca, sizeof ca, "%s/ca.crt", a->certs);
    snprintf(crt, sizeof crt, "%s/%s.crt", a->certs, a->as);
    snprintf(key, sizeof key, "%s/%s.key", a->certs, a->as);
    /* Parsed only if a full handshake needs them (not when resuming). */
    if (nt_tls_new_lazy(ca, crt, key, &id->tls, err, sizeof err) != NT_OK) {
        snprintf(id->err, sizeof id->err,
                 "cannot use the operator certificate %s (--certs %s --as "
                 "%s): %s", crt, a->certs, a->as, err);
        id->tls = NULL;
        return NULL;
    }
    /* Sessions resumed from one command to the next (a full handshake
     * otherwise); a certs directory we cannot write to just goes without. */
    snprintf(ca, sizeof ca, "%s/sessions", a->certs);
    (void)nt_tls_session_cache(id->tls, ca, err, sizeof err);
    return NULL;
}

/* OpenSSL's start (its configuration, every cipher and digest fetched for
 * a first SSL_CTX: ~4 ms) runs on a thread of its own while the command
 * reads the flow and the module and starts its network loop. */
static void identity_start(dpc_identity *id, const dpc_args *a)
{
    memset(id, 0, sizeof *id);
    id->a = a;
    if (pthread_create(&id->th, NULL, open_identity, id) == 0)
        id->started = 1;
    else
        open_identity(id);
}

/* Waits for identity_start's work: the context, or NULL with the reason
 * printed (report: 0 when the command already failed otherwise). */
static nt_tls *identity_wait(dpc_identity *id, int report)
{
    if (id->started) {
        pthread_join(id->th, NULL);
        id->started = 0;
    }
    if (!id->tls && report && id->err[0])
        cli_errf("%s", id->err);
    return id->tls;
}

/* Reads the module and its signature and checks them locally; returns 0
 * or CLI_EXIT_FAIL / CLI_EXIT_USAGE with the reason printed. */
static int read_module(dpc_ctx *c, const dpc_args *a,
                       const fl_stage_desc *st, uint8_t **mod)
{
    char sigpath[1024];
    uint8_t *sig = NULL;
    size_t len, slen;
    if (cli_read_file(a->module, CLI_MAX_FILE_BYTES, mod, &len) != 0)
        return CLI_EXIT_FAIL;
    if (len > DPC_MAX_MODULE) {
        cli_errf("%s is %zu bytes: more than %u bytes cannot be deployed "
                 "(one control frame)", a->module, len, DPC_MAX_MODULE);
        return CLI_EXIT_FAIL;
    }
    if (len >= 4 && memcmp(*mod, "\0asm", 4) == 0)
        c->kind = "wasm";
    else if (len >= 4 && memcmp(*mod, "\177ELF", 4) == 0)
        c->kind = "native";
    else {
        cli_errf("%s is neither a WebAssembly module nor an ELF shared "
                 "object", a->module);
        return CLI_EXIT_FAIL;
    }
    if (strcmp(c->kind, st->kind) != 0) {
        cli_errf("%s is a %s module but stage %s is a %s stage", a->module,
                 c->kind, st->name, st->kind);
        return CLI_EXIT_USAGE;
    }
    c->module_len = len;
    if (a->sig)
        snprintf(sigpath, sizeof sigpath, "%s", a->sig);
    else
        snprintf(sigpath, sizeof sigpath, "%s.sig", a->module);
    FILE *f = fopen(sigpath, "rb");
    if (!f) {
        cli_errf("no signature %s: %s (sign the module with 'isoflow sign "
                 "KEY %s')", sigpath, strerror(errno), a->module);
        return CLI_EXIT_FAIL;
    }
    fclose(f);
    if (cli_read_file(sigpath, DPC_MAX_SIG, &sig, &slen) != 0)
        return CLI_EXIT_FAIL;
    for (size_t i = 0; i < slen; i++)
        if ((sig[i] < 0x20 || sig[i] > 0x7e) && sig[i] != '\n') {
            cli_errf("%s is not a signature (byte %zu is not printable "
                     "ASCII)", sigpath, i);
            free(sig);
            return CLI_EXIT_FAIL;
        }
    c->sig = malloc(slen + 1);
    if (!c->sig) {
        free(sig);
        cli_errf("out of memory");
        return CLI_EXIT_FAIL;
    }
    memcpy(c->sig, sig, slen);
    c->sig[slen] = '\0';
    free(sig);
    return 0;
}

/* jstr, with "-" for a missing or empty value (table cells). */
static const char *jcell(const cJSON *j, const char *key)
{
    const char *s = jstr(j, key, "");
    return s[0] ? s : "-";
}

/* Prints the versions table of one final `versions` reply. */
static void print_versions(const dpc_target *t, const char *stage)
{
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(t->reply, "versions");
    long long active = jnum(t->reply, "active", -1);
    const cJSON *v;
    int i = 0, mark_at = -1;
    /* The row of the active version: the last entry that made it active. */
    cJSON_ArrayForEach(v, vs)
    {
        const char *out = jstr(v, "outcome", "?");
        if (jnum(v, "version", -1) == active &&
            (strcmp(out, "active") == 0 || strcmp(out, "declared") == 0))
            mark_at = i;
        i++;
    }
    printf("stage %s on %s: active version %lld\n", stage, t->name, active);
    printf("  %-8s %-8s %10s  %-16s %-19s  %-11s %s\n", "VERSION", "SHA256",
           "SIZE", "SIGNER", "TIME", "OUTCOME", "REASON");
    i = 0;
    cJSON_ArrayForEach(v, vs)
    {
        char when[32] = "-";
        long long ver = jnum(v, "version", -1);
        long long tm = jnum(v, "time", 0);
        const char *out = jstr(v, "outcome", "?");
        if (tm > 0) {
            time_t tt = (time_t)tm;
            struct tm lt;
            if (localtime_r(&tt, &lt))
                strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &lt);
        }
        printf("%c %-8lld %-8.8s %10lld  %-16.16s %-19s  %-11s %s\n",
               i++ == mark_at ? '*' : ' ', ver, jcell(v, "sha256"),
               jnum(v, "size", 0),
               jstr(v, "signer", "")[0] ? jcell(v, "signer")
                                        : jcell(v, "key_id"),
               when, out, jstr(v, "reason", ""));
    }
}

/* The summary line of deploy / rollback. */
static void print_summary(const dpc_ctx *c, const char *what,
                          const char *canary_failed)
{
    unsigned n[O__COUNT] = {0};
    long long vmin = -1, vmax = -1;
    for (uint32_t i = 0; i < c->ntargets; i++) {
        const dpc_target *t = &c->targets[i];
        n[t->outcome]++;
        if (t->version >= 0) {
            if (vmin < 0 || t->version < vmin)
                vmin = t->version;
            if (t->version > vmax)
                vmax = t->version;
        }
    }
    static const char *const okword[] = {"running", "swapped", "healthy"};
    if (dpc_json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "summary", what);
        cJSON_AddStringToObject(o, "stage", c->stage);
        cJSON_AddNumberToObject(o, okword[c->wait], n[O_OK]);
        cJSON_AddNumberToObject(o, "rolled_back", n[O_ROLLED]);
        cJSON_AddNumberToObject(o, "rejected", n[O_REJECTED]);
        cJSON_AddNumberToObject(o, "failed_init", n[O_FAILED_INIT]);
        cJSON_AddNumberToObject(o, "failed", n[O_ERROR]);
        cJSON_AddNumberToObject(o, "unreachable", n[O_UNREACH]);
        cJSON_AddNumberToObject(o, "not_tried", n[O_SKIPPED]);
        cJSON_AddNumberToObject(o, "nodes", c->ntargets);
        cJSON_AddNumberToObject(o, "seconds", elapsed_s(c->t0));
        cJSON_AddStringToObject(o, "via", c->agent_path ? "agent" : "direct");
        json_line(o);
        cJSON_Delete(o);
        return;
    }
    printf("%s stage %s", what, c->stage);
    if (vmin >= 0 && vmin == vmax)
        printf(" v%lld", vmin);
    else if (vmin >= 0)
        printf(" v%lld-v%lld", vmin, vmax);
    printf(": %u %s, %u rolled back, %u rejected, ", n[O_OK],
           okword[c->wait], n[O_ROLLED], n[O_REJECTED]);
    if (n[O_FAILED_INIT])
        printf("%u failed init, ", n[O_FAILED_INIT]);
    if (n[O_ERROR])
        printf("%u failed, ", n[O_ERROR]);
    printf("%u unreachable", n[O_UNREACH]);
    if (n[O_SKIPPED])
        printf(", %u not tried (canary %s failed: rollout stopped)",
               n[O_SKIPPED], canary_failed);
    printf(" of %u node%s in %.2f s%s\n", c->ntargets,
           c->ntargets == 1 ? "" : "s", elapsed_s(c->t0),
           c->agent_path ? " (through the agent)" : "");
}

/*
 * The three commands share this: parse, load the flow, resolve targets,
 * read the module (deploy), open the identity, run the requests, report.
 * Returns the exit code.
 */
static int run_command(int op, int argc, char **argv)
{
    static const char *const names[] = {"deploy", "rollback", "versions"};
    static void (*const helps[])(FILE *) = {
        cli_cmd_deploy_help, cli_cmd_rollback_help, cli_cmd_versions_help};
    const char *which = names[op];
    dpc_args a;
    dpc_ctx c;
    fl_graph *g = NULL;
    nt_tls *tls = NULL;
    nt_loop *loop = NULL;
    dpc_identity id;
    uint8_t *mod = NULL;
    char err[4096], agent_path[256];
    const char *canary_failed = NULL;
    int rc = parse_args(argc, argv, which, helps[op], &a);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;

    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    c.t0 = cli_now_ns();
    c.op = op;
    c.stage = a.stage;
    c.to_version = a.to;
    c.timeout_s = a.timeout;
    c.wait = cli_streq(a.wait, "first")     ? W_FIRST
           : cli_streq(a.wait, "swapped")   ? W_SWAPPED : W_HEALTHY;
    c.watch_ms = (uint32_t)(a.watch * 1000.0 + 0.5);

    dpc_json = a.json && op != OP_VERSIONS;
    rc = CLI_EXIT_FAIL;
    /* Through a running `isoflow agent` when one answers on its socket (a
     * connect, ~20 us): no OpenSSL here at all.  Otherwise, or with
     * --no-agent, the command makes its own TLS connections. */
    memset(&id, 0, sizeof id);
    if (!a.no_agent) {
        const char *p = a.agent;
        if (!p && cli_agent_path(a.certs, a.as, agent_path,
                                 sizeof agent_path) == 0)
            p = agent_path;
        if (p && cli_agent_probe(p) == 0) {
            c.agent_path = p;
        } else if (a.agent) {
            cli_errf("%s: no agent answers on %s (start one with 'isoflow "
                     "agent', or leave --agent out)", which, a.agent);
            goto out;
        }
    }
    if (!c.agent_path)
        identity_start(&id, &a);
    fl_status s = (fl_status)cli_load_topology(a.flow, &g, err, sizeof err);
    if (s != FL_OK) {
        if (err[0]) /* an unreadable file was reported by cli_read_file */
            fprintf(stderr, "%s\n", err);
        goto out;
    }
    fl_stage_desc sd;
    const fl_stage_desc *st =
        fl_graph_stage_find(g, a.stage, &sd) == FL_OK ? &sd : NULL;
    if (!st) {
        cli_errf("%s: no stage '%s' in %s", which, a.stage, a.flow);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (strcmp(st->kind, "wasm") != 0 && strcmp(st->kind, "native") != 0) {
        cli_errf("%s: stage %s is a builtin (%s): only wasm and native "
                 "stages can be deployed", which, st->name, st->kind);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    rc = resolve_targets(&c, g, st, a.node, a.layer, a.group);
    if (rc != 0)
        goto out;
    /* Through the agent, the first batch's links are asked for now: the
     * agent answers while the module is read (a canary's other nodes
     * only when their turn comes). */
    if (c.agent_path) {
        uint32_t first = op == OP_DEPLOY && cli_streq(a.strategy, "canary")
                                 && c.ntargets > 1 ? 1 : c.ntargets;
        pthread_mutex_lock(&c.mu);
        for (uint32_t i = 0; i < first; i++)
            entry_start(&c, &c.entries[c.targets[i].entry], NULL, NULL);
        pthread_mutex_unlock(&c.mu);
    }
    if (op == OP_DEPLOY) {
        rc = read_module(&c, &a, st, &mod);
        if (rc != 0)
            goto out;
        c.module = mod;
    }
    rc = CLI_EXIT_FAIL;
    if (!c.agent_path) {
        if (nt_loop_new(&loop, err, sizeof err) != NT_OK) {
            cli_errf("%s: cannot start the network loop: %s", which, err);
            goto out;
        }
        tls = identity_wait(&id, 1);
        if (!tls)
            goto out;
    }

    if (op == OP_DEPLOY && cli_streq(a.strategy, "canary") &&
        c.ntargets > 1) {
        dpc_target *t0 = &c.targets[0];
        if (dpc_json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "canary", t0->name);
            cJSON_AddNumberToObject(o, "watch_s", a.canary_time);
            cJSON_AddNumberToObject(o, "others", c.ntargets - 1);
            json_line(o);
            cJSON_Delete(o);
        } else {
            printf("canary %s: watching %.1f s before the other %u node%s\n",
                   t0->name, a.canary_time, c.ntargets - 1,
                   c.ntargets == 2 ? "" : "s");
            fflush(stdout);
        }
        int w = c.wait;
        c.wait = W_HEALTHY; /* the canary must be healthy */
        run_batch(&c, loop, tls, 0, 1,
                  (uint32_t)(a.canary_time * 1000.0 + 0.5));
        c.wait = w;
        if (t0->outcome == O_OK) {
            run_batch(&c, loop, tls, 1, c.ntargets, c.watch_ms);
        } else {
            canary_failed = t0->name;
            for (uint32_t i = 1; i < c.ntargets; i++)
                c.targets[i].outcome = O_SKIPPED;
            if (dpc_json) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "canary_failed", t0->name);
                cJSON_AddNumberToObject(o, "untouched", c.ntargets - 1);
                json_line(o);
                cJSON_Delete(o);
            } else {
                printf("canary %s failed: rollout stopped, %u node%s left "
                       "untouched\n", t0->name, c.ntargets - 1,
                       c.ntargets == 2 ? "" : "s");
            }
        }
    } else {
        run_batch(&c, loop, tls, 0, c.ntargets, c.watch_ms);
    }

    rc = CLI_EXIT_OK;
    for (uint32_t i = 0; i < c.ntargets; i++)
        if (c.targets[i].outcome != O_OK)
            rc = CLI_EXIT_FAIL;
    if (op == OP_VERSIONS) {
        dpc_target *t = &c.targets[0];
        if (t->outcome == O_OK && a.json)
            printf("%s\n", t->reply_text ? t->reply_text : "{}");
        else if (t->outcome == O_OK)
            print_versions(t, a.stage);
    } else {
        print_summary(&c, op == OP_DEPLOY ? "deployed" : "rolled back",
                      canary_failed);
    }

out:
    for (uint32_t i = 0; i < c.nentries; i++)
        cli_agent_close(c.entries[i].agent);
    if (loop)
        nt_loop_free(loop); /* closes every connection */
    if (!tls)
        tls = identity_wait(&id, 0);
    nt_tls_free(tls);
    for (uint32_t i = 0; i < c.ntargets; i++) {
        cJSON_Delete(c.targets[i].reply);
        free(c.targets[i].reply_text);
    }
    free(c.targets);
    free(c.entries);
    free(c.sig);
    free(mod);
    fl_graph_free(g);
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
    return rc;
}

/* `isoflow deploy`: see cli_cmd_deploy_help. */
int cli_cmd_deploy(int argc, char **argv)
{
    return run_command(OP_DEPLOY, argc, argv);
}

/* `isoflow rollback`: see cli_cmd_rollback_help. */
int cli_cmd_rollback(int argc, char **argv)
{
    return run_command(OP_ROLLBACK, argc, argv);
}

/* `isoflow versions`: see cli_cmd_versions_help. */
int cli_cmd_versions(int argc, char **argv)
{
    return run_command(OP_VERSIONS, argc, argv);
}
