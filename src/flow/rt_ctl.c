/*
 * rt_ctl.c - the control plane of a node (docs/DEPLOY.md "Deploying to
 * running nodes: the node side"): deploy, versions, rollback and status
 * requests from operator connections (or from the node a device connects
 * to), verified against the node's trusted keys, kept in the node's version
 * store, swapped into the running runtime and watched, with progress
 * replies; requests for a device below are forwarded over its link.
 *
 * Threads: the link loop only records (requests are copied into a queue;
 * relaying a device's replies and refusing non-operators are done there,
 * they are cheap); one control thread verifies, stores, swaps and watches.
 * `mu` guards the queue, the operator connections and the forwards; the
 * per-stage state and the watches belong to the control thread.  rt_net.c
 * functions (which take n->mu) are never called with `mu` held.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "deploy.h"
#include "net.h"
#include "platform.h"
#include "rt_int.h"
#include "stage_host.h"

#define CTL_DEFAULT_WATCH_MS 2000u
#define CTL_MAX_WATCH_MS 600000u
#define CTL_TICK_NS 500000l      /* poll period while a watch runs (0.5 ms) */
#define CTL_WARM (2u << 20)          /* control thread's heap at start */
#define CTL_FIRST_TICK_NS 100000l /* ... until its first message (0.1 ms) */
#define CTL_IDLE_NS 100000000l   /* otherwise (100 ms) */
#define CTL_PATH 1024

/* Where the replies of a request go. */
enum { TG_CALLBACK = 1, TG_OPERATOR = 2, TG_DOWN = 3 };
typedef struct target {
    int kind;
    nt_conn *conn;            /* operator / down connection */
    uint64_t gen;             /* operator: its registration number */
    uint32_t id;              /* the request's id */
    fl__ctl_reply_fn fn;      /* callback */
    void *user;
} target;

typedef struct req {
    struct req *next;
    target to;
    uint64_t t_rx;            /* monotonic ns when received */
    char *json;               /* NUL-terminated copy */
    size_t json_len;
    uint8_t *blob;
    size_t blob_len;
} req;

typedef struct opconn {       /* an accepted operator connection */
    nt_conn *conn;
    uint64_t gen;
} opconn;

typedef struct fwd {          /* a request forwarded to a node below */
    uint32_t my_id;
    target to;                /* the operator's side */
    nt_conn *via;             /* the link it went over (NULL: being sent) */
    char node[NT_MAX_NAME + 1];
} fwd;

typedef struct cstage {       /* a local swappable stage */
    const fl__stage *d;
    uint64_t active;          /* store version running (0: declared) */
    uint32_t rb_seen;         /* runtime rollbacks already accounted */
    int watched;              /* a watch runs */
    int swapped;              /* swapped at least once by this process */
} cstage;

typedef struct watch {
    req *r;                   /* owned */
    cstage *cs;
    uint64_t version, from;   /* store numbers */
    uint64_t switch_ns, deadline;
    int first_sent;
} watch;

typedef struct signer {       /* key names seen by dp_verify, by version */
    uint64_t version;
    char name[DP_MAX_NAME + 1];
} signer;

struct fl__ctl {
    fl_runtime *rt;
    const fl_graph *g;
    char name[NT_MAX_NAME + 1];
    char dir[CTL_PATH];       /* STATE/NAME/deploy */
    dp_store *store;
    dp_trust *trust;          /* NULL: no --trust */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    int running, quit;
    req *qh, *qt;             /* queue (mu) */
    opconn *ops;              /* (mu) */
    uint32_t nops, capops;
    uint64_t next_gen;
    fwd *fwds;                /* (mu) */
    uint32_t nfwd, capfwd, next_id;
    /* control thread only */
    cstage *cs;
    uint32_t ncs;
    watch *w;
    uint32_t nw, capw;
    req *defh;                /* deferred: their stage is being watched */
    /* One side job at a time on a thread of its own (started at the first
     * job, kept: creating one per job cost a deploy 0.2-0.9 ms here),
     * while this thread goes on: a deploy's signature check and module
     * file (while the module is validated here), then the active
     * version's persistence (fsyncs, ~1 ms, while the swapped stage gets
     * its first message).  Every other use of the store waits for it
     * (job_wait); "first" is sent only after it. */
    pthread_t jth;
    int jth_live;             /* jth started (joined by fl__ctl_stop) */
    pthread_mutex_t jmu;      /* guards job_req, job_quit; with jcv */
    pthread_cond_t jcv;
    int job_req, job_quit;
    int job_on;               /* a job was started and not waited for */
    atomic_int job_done;
    void (*job)(fl__ctl *c);
    char p_stage[DP_MAX_NAME + 1]; /* persist job */
    uint64_t p_version;
    const req *v_req;         /* pre-deploy job: in */
    const char *v_sig;
    dp_status v_st;           /* out: dp_verify's status, info, err */
    dp_sig_info v_info;
    char v_err[512];
    dp_staged *v_staged;      /* out: the module file (or NULL: v_serr) */
    char v_serr[512];
    signer *sg;
    uint32_t nsg, capsg;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void clog_(const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static void clog_(const char *fmt, ...)
{
    va_list ap;
    char line[1024];
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "isoflow: deploy: %s\n", line);
}

static void req_free(req *r)
{
    if (!r)
        return;
    free(r->json);
    free(r->blob);
    free(r);
}

/* A copy of a request (NULL when out of memory). */
static req *req_new(const target *to, const char *json, size_t json_len,
                    const uint8_t *blob, size_t blob_len)
{
    req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->to = *to;
    r->t_rx = mono_ns();
    r->json = malloc(json_len + 1);
    r->blob = malloc(blob_len ? blob_len : 1);
    if (!r->json || !r->blob) {
        req_free(r);
        return NULL;
    }
    memcpy(r->json, json, json_len);
    r->json[json_len] = '\0';
    r->json_len = json_len;
    if (blob_len)
        memcpy(r->blob, blob, blob_len);
    r->blob_len = blob_len;
    return r;
}

static void enqueue(fl__ctl *c, req *r, int front)
{
    pthread_mutex_lock(&c->mu);
    if (front) {
        r->next = c->qh;
        c->qh = r;
        if (!c->qt)
            c->qt = r;
    } else {
        r->next = NULL;
        if (c->qt)
            c->qt->next = r;
        else
            c->qh = r;
        c->qt = r;
    }
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* ---- Replies. ---------------------------------------------------------- */

/* Is (conn, gen) a registered operator connection?  Under mu. */
static int op_live(const fl__ctl *c, nt_conn *conn, uint64_t gen)
{
    for (uint32_t i = 0; i < c->nops; i++)
        if (c->ops[i].conn == conn && c->ops[i].gen == gen)
            return 1;
    return 0;
}

/* Sends a CTL_REPLY with json to a target.  `locked`: the caller holds mu
 * (operator targets only need it; down targets must not have it). */
static void deliver(fl__ctl *c, const target *to, const char *json,
                    size_t len, int locked)
{
    nt_buf b;
    if (to->kind == TG_CALLBACK) {
        if (to->fn)
            to->fn(to->user, json, len);
        return;
    }
    nt_buf_init(&b, 0);
    if (nt_put_ctl(&b, NT_CTL_REPLY, to->id, json, len, NULL, 0) == NT_OK) {
        if (to->kind == TG_OPERATOR) {
            if (!locked)
                pthread_mutex_lock(&c->mu);
            if (op_live(c, to->conn, to->gen))
                nt_conn_send(to->conn, b.data, b.len);
            if (!locked)
                pthread_mutex_unlock(&c->mu);
        } else if (to->kind == TG_DOWN) {
            fl__net *n = fl__rt_net(c->rt);
            if (n)
                fl__net_ctl_send_down(n, to->conn, b.data, b.len);
        }
    }
    nt_buf_free(&b);
}

/* Adds "node" to o, sends it to r's target and frees o. */
static void reply(fl__ctl *c, const target *to, cJSON *o)
{
    char *text;
    if (!o)
        return;
    cJSON_AddStringToObject(o, "node", c->name);
    text = cJSON_PrintUnformatted(o);
    if (text) {
        deliver(c, to, text, strlen(text), 0);
        cJSON_free(text);
    }
    cJSON_Delete(o);
}

/* {"ok":false,"final":true,"error":...} (the node added by reply). */
static cJSON *error_obj(const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static cJSON *error_obj(const char *fmt, ...)
{
    va_list ap;
    char text[512];
    cJSON *o = cJSON_CreateObject();
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (!o)
        return NULL;
    cJSON_AddBoolToObject(o, "ok", 0);
    cJSON_AddBoolToObject(o, "final", 1);
    cJSON_AddStringToObject(o, "error", text);
    return o;
}

/* An event object: {"event":E,"stage":S} plus ok/final when final. */
static cJSON *event_obj(const char *event, const char *stage, int final,
                        int ok)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "event", event);
    if (final) {
        cJSON_AddBoolToObject(o, "ok", ok);
        cJSON_AddBoolToObject(o, "final", 1);
    }
    if (stage)
        cJSON_AddStringToObject(o, "stage", stage);
    return o;
}

/* ---- Stages, store helpers. -------------------------------------------- */

static cstage *stage_find(fl__ctl *c, const char *name)
{
    for (uint32_t i = 0; i < c->ncs; i++)
        if (strcmp(c->cs[i].d->name, name) == 0)
            return &c->cs[i];
    return NULL;
}

static void signer_note(fl__ctl *c, uint64_t version, const char *name)
{
    for (uint32_t i = 0; i < c->nsg; i++)
        if (c->sg[i].version == version) {
            snprintf(c->sg[i].name, sizeof c->sg[i].name, "%s", name);
            return;
        }
    if (c->nsg == c->capsg) {
        uint32_t nc = c->capsg ? c->capsg * 2 : 16;
        signer *ns = realloc(c->sg, nc * sizeof *ns);
        if (!ns)
            return;
        c->sg = ns;
        c->capsg = nc;
    }
    c->sg[c->nsg].version = version;
    snprintf(c->sg[c->nsg].name, sizeof c->sg[c->nsg].name, "%s", name);
    c->nsg++;
}

static const char *signer_of(const fl__ctl *c, uint64_t version,
                             const char *key_id)
{
    const char *name;
    for (uint32_t i = 0; i < c->nsg; i++)
        if (c->sg[i].version == version)
            return c->sg[i].name;
    /* Verified before this process started: the key's name in the trust
     * set, when it is still there. */
    name = dp_trust_key_name(c->trust, key_id);
    return name ? name : "";
}

/*
 * Makes `version` the stage's persisted active version; 0 (the flow file's
 * module) removes the store's active/<stage> file (docs/DEPLOY.md: no
 * active version means the declaration's module) and records it.
 */
static void persist_active(fl__ctl *c, const char *stage, uint64_t version)
{
    if (version) {
        if (dp_store_activate(c->store, stage, version) != DP_OK)
            clog_("stage %s: cannot persist version %llu as active: %s",
                  stage, (unsigned long long)version,
                  dp_store_errmsg(c->store));
        return;
    }
    char path[CTL_PATH + 128];
    snprintf(path, sizeof path, "%s/active/%s", c->dir, stage);
    if (unlink(path) != 0 && errno != ENOENT)
        clog_("stage %s: cannot remove %s: %s", stage, path, strerror(errno));
    snprintf(path, sizeof path, "%s/active", c->dir);
    int fd = open(path, O_RDONLY);
    if (fd >= 0) { /* the removal survives a crash */
        fsync(fd);
        close(fd);
    }
    dp_store_record(c->store, stage, 0, DP_ACTIVE,
                    "the flow file's module (declared)");
}

static void *job_main(void *arg)
{
    fl__ctl *c = arg;
    pthread_mutex_lock(&c->jmu);
    for (;;) {
        while (!c->job_req && !c->job_quit)
            pthread_cond_wait(&c->jcv, &c->jmu);
        if (!c->job_req)
            break; /* quit with nothing asked */
        c->job_req = 0;
        pthread_mutex_unlock(&c->jmu);
        c->job(c);
        pthread_mutex_lock(&c->jmu);
        atomic_store(&c->job_done, 1);
        pthread_cond_broadcast(&c->jcv);
    }
    pthread_mutex_unlock(&c->jmu);
    return NULL;
}

/* Runs fn(c) on the side (or at once when no thread can be started).
 * The previous job has been waited for. */
static void job_start(fl__ctl *c, void (*fn)(fl__ctl *c))
{
    c->job = fn;
    atomic_store(&c->job_done, 0);
    if (!c->jth_live && pthread_create(&c->jth, NULL, job_main, c) == 0)
        c->jth_live = 1;
    if (c->jth_live) {
        pthread_mutex_lock(&c->jmu);
        c->job_req = 1;
        pthread_cond_signal(&c->jcv);
        pthread_mutex_unlock(&c->jmu);
        c->job_on = 1;
        return;
    }
    fn(c);
    atomic_store(&c->job_done, 1);
}

static int job_busy(fl__ctl *c)
{
    return c->job_on && !atomic_load(&c->job_done);
}

static void job_wait(fl__ctl *c)
{
    if (!c->job_on)
        return;
    pthread_mutex_lock(&c->jmu);
    while (!atomic_load(&c->job_done))
        pthread_cond_wait(&c->jcv, &c->jmu);
    pthread_mutex_unlock(&c->jmu);
    c->job_on = 0;
}

/* Waits for a pending job, then ends the side thread (after the control
 * thread, so that no new job comes). */
static void job_thread_stop(fl__ctl *c)
{
    job_wait(c);
    if (!c->jth_live)
        return;
    pthread_mutex_lock(&c->jmu);
    c->job_quit = 1;
    pthread_cond_signal(&c->jcv);
    pthread_mutex_unlock(&c->jmu);
    pthread_join(c->jth, NULL);
    c->jth_live = 0;
}

static void persist_job(fl__ctl *c)
{
    persist_active(c, c->p_stage, c->p_version);
}

/* Persists `version` as the stage's active one on the side. */
static void persist_start(fl__ctl *c, const char *stage, uint64_t version)
{
    snprintf(c->p_stage, sizeof c->p_stage, "%s", stage);
    c->p_version = version;
    job_start(c, persist_job);
}

/* ---- Watches. ---------------------------------------------------------- */

static void watch_add(fl__ctl *c, req *r, cstage *cs, uint64_t version,
                      uint64_t from, uint64_t switch_ns, uint32_t watch_ms)
{
    if (c->nw == c->capw) {
        uint32_t nc = c->capw ? c->capw * 2 : 8;
        watch *nw = realloc(c->w, nc * sizeof *nw);
        if (!nw) { /* cannot watch: report healthy at once */
            cJSON *o = event_obj("healthy", cs->d->name, 1, 1);
            cJSON_AddNumberToObject(o, "version", (double)version);
            cJSON_AddNumberToObject(o, "calls", 0);
            reply(c, &r->to, o);
            req_free(r);
            return;
        }
        c->w = nw;
        c->capw = nc;
    }
    watch *w = &c->w[c->nw++];
    memset(w, 0, sizeof *w);
    w->r = r;
    w->cs = cs;
    w->version = version;
    w->from = from;
    w->switch_ns = switch_ns;
    w->deadline = mono_ns() + (uint64_t)watch_ms * 1000000ull;
    cs->watched = 1;
}

/* The deferred requests of a stage whose watch ended go back to the front
 * of the queue (in their order). */
static void undefer(fl__ctl *c)
{
    req *list = c->defh, *rev = NULL;
    c->defh = NULL;
    while (list) { /* reverse, then push each to the front */
        req *n = list->next;
        list->next = rev;
        rev = list;
        list = n;
    }
    while (rev) {
        req *n = rev->next;
        enqueue(c, rev, 1);
        rev = n;
    }
}

/* A rollback the runtime did by itself: persist the previous version. */
static void note_rollback(fl__ctl *c, cstage *cs, uint64_t bad,
                          uint64_t back_to, const char *reason)
{
    dp_store_record(c->store, cs->d->name, bad, DP_ROLLED_BACK, reason);
    persist_active(c, cs->d->name, back_to);
    cs->active = back_to;
    clog_("stage %s: version %llu rolled back to %llu: %s", cs->d->name,
          (unsigned long long)bad, (unsigned long long)back_to, reason);
}

static void rollback_reason(const fl_swap_status *ss, char *out, size_t cap)
{
    snprintf(out, cap, "trap: %s (%u trap%s within %llu message%s)",
             ss->rollback_trap[0] ? ss->rollback_trap : "unknown",
             (unsigned)ss->rollback_traps, ss->rollback_traps == 1 ? "" : "s",
             (unsigned long long)(ss->rollback_calls ? ss->rollback_calls : 1),
             ss->rollback_calls == 1 || ss->rollback_calls == 0 ? "" : "s");
}

/* Polls every watch: first message, rollback, end of the window. */
static void poll_watches(fl__ctl *c)
{
    uint64_t now = mono_ns();
    int ended = 0;
    for (uint32_t i = 0; i < c->nw;) {
        watch *w = &c->w[i];
        cstage *cs = w->cs;
        fl_swap_status ss;
        int done = 0;
        if (fl_runtime_swap_status(c->rt, cs->d->name, &ss) != FL_OK)
            memset(&ss, 0, sizeof ss);
        if (!w->first_sent && ss.first_call_ns &&
            ss.switch_ns == w->switch_ns) {
            if (job_busy(c) && ss.rollbacks <= cs->rb_seen) {
                i++; /* "first" means durable too: next tick */
                continue;
            }
            job_wait(c);
            cJSON *o = event_obj("first", cs->d->name, 0, 1);
            double ms = ss.first_call_ns > w->r->t_rx
                            ? (double)(ss.first_call_ns - w->r->t_rx) / 1e6
                            : 0.0;
            cJSON_AddNumberToObject(o, "version", (double)w->version);
            cJSON_AddNumberToObject(o, "ms", ms);
            /* The moment itself, on this host's CLOCK_MONOTONIC: a tool on
             * the same host (the deploy benchmark) times the whole update
             * from its own start to this message. */
            cJSON_AddNumberToObject(o, "at_ns", (double)ss.first_call_ns);
            reply(c, &w->r->to, o);
            w->first_sent = 1;
        }
        if (ss.rollbacks > cs->rb_seen) {
            char reason[512];
            rollback_reason(&ss, reason, sizeof reason);
            cs->rb_seen = ss.rollbacks;
            job_wait(c);
            note_rollback(c, cs, w->version, w->from, reason);
            cJSON *o = event_obj("rolled-back", cs->d->name, 1, 0);
            cJSON_AddNumberToObject(o, "version", (double)w->version);
            cJSON_AddNumberToObject(o, "active", (double)w->from);
            cJSON_AddStringToObject(o, "reason", reason);
            reply(c, &w->r->to, o);
            done = 1;
        } else if (now >= w->deadline) {
            job_wait(c);
            cJSON *o = event_obj("healthy", cs->d->name, 1, 1);
            cJSON_AddNumberToObject(o, "version", (double)w->version);
            cJSON_AddNumberToObject(o, "calls", (double)ss.calls_since_swap);
            reply(c, &w->r->to, o);
            clog_("stage %s: version %llu healthy (%llu calls watched)",
                  cs->d->name, (unsigned long long)w->version,
                  (unsigned long long)ss.calls_since_swap);
            done = 1;
        }
        if (done) {
            cs->watched = 0;
            req_free(w->r);
            c->w[i] = c->w[--c->nw];
            ended = 1;
        } else {
            i++;
        }
    }
    if (ended)
        undefer(c);
    /* Rollbacks after the final reply (the runtime's window is longer). */
    for (uint32_t i = 0; i < c->ncs; i++) {
        cstage *cs = &c->cs[i];
        fl_swap_status ss;
        if (!cs->swapped || cs->watched ||
            fl_runtime_swap_status(c->rt, cs->d->name, &ss) != FL_OK ||
            ss.rollbacks <= cs->rb_seen)
            continue;
        char reason[512];
        rollback_reason(&ss, reason, sizeof reason);
        cs->rb_seen = ss.rollbacks;
        job_wait(c);
        /* the runtime went back to the version before the current one */
        uint64_t back = ss.version;
        note_rollback(c, cs, cs->active, back, reason);
    }
}

/* ---- Requests. --------------------------------------------------------- */

static const char *jstr(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The local swappable stage a request names, or NULL after replying the
 * error. */
static cstage *need_stage(fl__ctl *c, const req *r, const char *stage)
{
    cstage *cs;
    if (!stage) {
        reply(c, &r->to, error_obj("missing field \"stage\""));
        return NULL;
    }
    cs = stage_find(c, stage);
    if (cs)
        return cs;
    for (uint32_t i = 0; i < c->g->nstages; i++) {
        const fl__stage *d = &c->g->stages[i];
        const fl__stage *dd;
        uint32_t ninst = 0;
        if (strcmp(d->name, stage) != 0)
            continue;
        if (fl__rt_stage_at(c->rt, i, &dd, &ninst) && ninst == 0)
            reply(c, &r->to,
                  error_obj("stage %s does not run on node %s", stage,
                            c->name));
        else
            reply(c, &r->to,
                  error_obj("stage %s is a %s stage: only wasm and native "
                            "stages can be deployed",
                            stage, d->kind ? d->kind : "?"));
        return NULL;
    }
    reply(c, &r->to, error_obj("no stage %s on node %s", stage, c->name));
    return NULL;
}

/* A final "rejected" reply, recorded in the history and logged. */
static void reject(fl__ctl *c, const req *r, const char *stage,
                   uint64_t version, const char *reason)
{
    cJSON *o = event_obj("rejected", stage, 1, 0);
    if (version)
        cJSON_AddNumberToObject(o, "version", (double)version);
    cJSON_AddStringToObject(o, "reason", reason);
    reply(c, &r->to, o);
    if (stage && dp_name_ok(stage))
        dp_store_record(c->store, stage, version, DP_REJECTED, reason);
    clog_("stage %s: %s rejected: %s", stage ? stage : "?",
          version ? "version" : "module", reason);
}

static uint32_t watch_ms_of(const cJSON *j)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "watch_ms");
    if (!cJSON_IsNumber(v) || v->valuedouble < 0)
        return CTL_DEFAULT_WATCH_MS;
    if (v->valuedouble > CTL_MAX_WATCH_MS)
        return CTL_MAX_WATCH_MS;
    return (uint32_t)v->valuedouble;
}

/*
 * Swaps version `version` (bytes, store number; 0: the flow file's module)
 * into the stage (code: those bytes already loaded and validated, or NULL), after the "verified" reply was sent: "swapped" then a
 * watch (which sends "first" and the final reply), or "failed-init" /
 * "rejected".  Takes r (freed here or by the watch).
 */
static void swap_and_watch(fl__ctl *c, req *r, cstage *cs,
                           const uint8_t *bytes, size_t len, fl__code *code,
                           uint64_t version, uint32_t watch_ms)
{
    const char *stage = cs->d->name;
    fl_swap_result res;
    fl_swap_status ss;
    uint64_t from = cs->active;
    fl_status st;

    if (fl_runtime_swap_status(c->rt, stage, &ss) == FL_OK)
        cs->rb_seen = ss.rollbacks;
    st = code ? fl__swap_code(c->rt, stage, code, (uint32_t)version, &res)
              : fl_runtime_swap(c->rt, stage, bytes, len, (uint32_t)version,
                                &res);
    if (st != FL_OK) {
        if (st == FL_ARG) {
            reject(c, r, stage, version, res.reason);
        } else {
            cJSON *o = event_obj("failed-init", stage, 1, 0);
            cJSON_AddNumberToObject(o, "version", (double)version);
            cJSON_AddNumberToObject(o, "active", (double)from);
            cJSON_AddStringToObject(o, "reason", res.reason);
            reply(c, &r->to, o);
            dp_store_record(c->store, stage, version, DP_FAILED_INIT,
                            res.reason);
            clog_("stage %s: version %llu failed: %s (version %llu keeps "
                  "running)", stage, (unsigned long long)version, res.reason,
                  (unsigned long long)from);
        }
        req_free(r);
        return;
    }
    cs->active = version;
    cs->swapped = 1;
    persist_start(c, stage, version);
    clog_("stage %s: now runs version %llu (was %llu; %u instance%s, pause "
          "%.1f ms)", stage, (unsigned long long)version,
          (unsigned long long)from, res.instances,
          res.instances == 1 ? "" : "s", res.pause_us / 1000.0);
    cJSON *o = event_obj("swapped", stage, 0, 1);
    cJSON_AddNumberToObject(o, "version", (double)version);
    cJSON_AddNumberToObject(o, "from_version", (double)from);
    cJSON_AddNumberToObject(o, "prepare_us", res.prepare_us);
    cJSON_AddNumberToObject(o, "pause_us", res.pause_us);
    cJSON_AddNumberToObject(o, "instances", res.instances);
    reply(c, &r->to, o);
    if (fl_runtime_swap_status(c->rt, stage, &ss) != FL_OK)
        memset(&ss, 0, sizeof ss);
    watch_add(c, r, cs, version, from, ss.switch_ns, watch_ms);
    /* watch_ms 0: final right after the first message or the swap */
    poll_watches(c);
}

/* The "verified" reply for a stored version. */
static void send_verified(fl__ctl *c, const req *r, const char *stage,
                          const dp_version_info *vi, const char *signer_name)
{
    cJSON *o = event_obj("verified", stage, 0, 1);
    cJSON_AddNumberToObject(o, "version", (double)vi->version);
    cJSON_AddStringToObject(o, "sha256", vi->sha256);
    cJSON_AddNumberToObject(o, "size", (double)vi->size);
    cJSON_AddStringToObject(o, "signer", signer_name);
    cJSON_AddStringToObject(o, "key_id", vi->key_id);
    reply(c, &r->to, o);
}

/* The side part of a deploy: dp_verify, then (verified) the module file
 * staged beside the store. */
static void pre_deploy_job(fl__ctl *c)
{
    const req *r = c->v_req;
    const char *sig = c->v_sig;
    memset(&c->v_info, 0, sizeof c->v_info);
    c->v_err[0] = c->v_serr[0] = '\0';
    c->v_staged = NULL;
    c->v_st = dp_verify(c->trust, r->blob, r->blob_len, (const uint8_t *)sig,
                        sig ? strlen(sig) : 0, &c->v_info, c->v_err,
                        sizeof c->v_err);
    if (c->v_st == DP_OK &&
        dp_store_stage(c->store, r->blob, r->blob_len, &c->v_staged) != DP_OK)
        snprintf(c->v_serr, sizeof c->v_serr, "%s",
                 dp_store_errmsg(c->store));
}

static void op_deploy(fl__ctl *c, req *r, const cJSON *j, cstage *cs)
{
    const char *stage = cs->d->name, *kind = jstr(j, "kind");
    const char *sig = jstr(j, "sig");
    dp_sig_info info;
    dp_version_info vi;
    char err[512];
    fl__code *code = NULL;
    uint64_t version = 0;

    if (kind && strcmp(kind, cs->d->kind) != 0) {
        reply(c, &r->to,
              error_obj("stage %s is a %s stage, not %s", stage, cs->d->kind,
                        kind));
        req_free(r);
        return;
    }
    if (!c->trust) {
        reject(c, r, stage, 0,
               "no trusted keys configured (start the node with --trust)");
        req_free(r);
        return;
    }
    /* The signature check and the module file (written and synced beside
     * the store) on the side while the module is validated here: the
     * three take about the same time.  Nothing is a version before the
     * commit below, and the reasons keep their order: signature, stage,
     * module, store. */
    c->v_req = r;
    c->v_sig = sig;
    job_start(c, pre_deploy_job);
    err[0] = '\0';
    fl_status lst = fl__code_load(cs->d, r->blob, r->blob_len, &code, err,
                                  sizeof err);
    job_wait(c);
    info = c->v_info;
    const char *why = NULL;
    char whybuf[700];
    if (c->v_st != DP_OK) {
        why = c->v_err;
    } else if (info.stage[0] && strcmp(info.stage, stage) != 0) {
        snprintf(whybuf, sizeof whybuf, "signed for stage %s, not %s",
                 info.stage, stage);
        why = whybuf;
    } else if (lst != FL_OK) {
        snprintf(whybuf, sizeof whybuf, "invalid module: %s", err);
        why = whybuf;
    } else if (!c->v_staged) {
        why = c->v_serr;
    }
    if (why) {
        reject(c, r, stage, 0, why);
        dp_store_abort(c->store, c->v_staged);
        c->v_staged = NULL;
        fl__code_release(code);
        req_free(r);
        return;
    }
    /* code is kept: it is what gets swapped in (loaded once) */
    if (dp_store_commit(c->store, c->v_staged, &info, &version) != DP_OK ||
        dp_store_version(c->store, version, &vi) != DP_OK) {
        c->v_staged = NULL;
        reject(c, r, stage, 0, dp_store_errmsg(c->store));
        fl__code_release(code);
        req_free(r);
        return;
    }
    c->v_staged = NULL;
    signer_note(c, version, info.key_name);
    clog_("stage %s: version %llu verified (%llu bytes, sha256 %s, signed by "
          "%s)", stage, (unsigned long long)version,
          (unsigned long long)vi.size, vi.sha256, info.key_name);
    send_verified(c, r, stage, &vi, info.key_name);
    swap_and_watch(c, r, cs, r->blob, r->blob_len, code, version,
                   watch_ms_of(j));
    fl__code_release(code);
}

typedef struct hist_walk {
    cJSON *arr;               /* versions list, or NULL */
    const fl__ctl *c;
    uint64_t *act;            /* activations in order */
    uint32_t nact, capact;
} hist_walk;

static int hist_cb(void *user, const dp_history_entry *e)
{
    hist_walk *h = user;
    if (h->arr) {
        cJSON *o = cJSON_CreateObject();
        if (o) {
            cJSON_AddNumberToObject(o, "version", (double)e->version);
            cJSON_AddStringToObject(o, "sha256", e->sha256);
            cJSON_AddNumberToObject(o, "size", (double)e->size);
            cJSON_AddStringToObject(o, "key_id", e->key_id);
            cJSON_AddStringToObject(o, "signer",
                                    signer_of(h->c, e->version, e->key_id));
            cJSON_AddNumberToObject(o, "time", (double)e->time);
            cJSON_AddStringToObject(o, "outcome",
                                    e->version == 0 && e->outcome == DP_ACTIVE
                                        ? "declared"
                                        : dp_outcome_name(e->outcome));
            cJSON_AddStringToObject(o, "reason", e->reason ? e->reason : "");
            cJSON_AddItemToArray(h->arr, o);
        }
    }
    if (e->outcome == DP_ROLLED_BACK) { /* not a version to go back to */
        uint32_t k = 0;
        for (uint32_t i = 0; i < h->nact; i++)
            if (h->act[i] != e->version)
                h->act[k++] = h->act[i];
        h->nact = k;
    }
    if (e->outcome == DP_ACTIVE) {
        if (h->nact == h->capact) {
            uint32_t nc = h->capact ? h->capact * 2 : 16;
            uint64_t *na = realloc(h->act, nc * sizeof *na);
            if (!na)
                return 1;
            h->act = na;
            h->capact = nc;
        }
        h->act[h->nact++] = e->version;
    }
    return 0;
}

static void op_versions(fl__ctl *c, req *r, cstage *cs)
{
    hist_walk h;
    memset(&h, 0, sizeof h);
    h.c = c;
    cJSON *o = event_obj("versions", cs->d->name, 1, 1);
    h.arr = cJSON_CreateArray();
    if (dp_store_history(c->store, cs->d->name, hist_cb, &h) != DP_OK) {
        cJSON_Delete(o);
        cJSON_Delete(h.arr);
        free(h.act);
        reply(c, &r->to,
              error_obj("stage %s: cannot read its history: %s", cs->d->name,
                        dp_store_errmsg(c->store)));
        return;
    }
    if (cJSON_GetArraySize(h.arr) == 0) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddNumberToObject(d, "version", 0);
        cJSON_AddStringToObject(d, "outcome", "declared");
        cJSON_AddStringToObject(d, "reason", "the flow file's module");
        cJSON_AddItemToArray(h.arr, d);
    }
    cJSON_AddNumberToObject(o, "active", (double)cs->active);
    cJSON_AddItemToObject(o, "versions", h.arr);
    free(h.act);
    reply(c, &r->to, o);
}

static void op_rollback(fl__ctl *c, req *r, const cJSON *j, cstage *cs)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "version");
    const char *stage = cs->d->name;
    uint64_t target = 0;
    uint8_t *bytes = NULL;
    size_t len = 0;
    dp_version_info vi;
    char err[512];

    if (v && !(cJSON_IsNumber(v) && v->valuedouble >= 0)) {
        reply(c, &r->to, error_obj("\"version\" must be a number >= 0"));
        req_free(r);
        return;
    }
    if (v) {
        target = (uint64_t)v->valuedouble;
    } else { /* the version active before the current one */
        hist_walk h;
        memset(&h, 0, sizeof h);
        h.c = c;
        dp_store_history(c->store, stage, hist_cb, &h);
        int found = 0;
        for (uint32_t i = h.nact; i-- > 0;) {
            if (h.act[i] != cs->active) {
                /* only activations before the current one's last */
                int later_cur = 0;
                for (uint32_t k = i + 1; k < h.nact; k++)
                    later_cur |= h.act[k] == cs->active;
                if (later_cur) {
                    target = h.act[i];
                    found = 1;
                    break;
                }
            }
        }
        free(h.act);
        if (!found && cs->active == 0) {
            reply(c, &r->to,
                  error_obj("stage %s has no earlier version to roll back "
                            "to", stage));
            req_free(r);
            return;
        }
    }
    if (target == cs->active) {
        reply(c, &r->to,
              error_obj("stage %s already runs version %llu", stage,
                        (unsigned long long)target));
        req_free(r);
        return;
    }
    memset(&vi, 0, sizeof vi);
    if (target == 0) {
        if (fl__read_file(cs->d->path, FL__MAX_STAGE_FILE, &bytes, &len, err,
                          sizeof err) != FL_OK) {
            reply(c, &r->to, error_obj("stage %s: %s", stage, err));
            req_free(r);
            return;
        }
        dp_sha256_hex(bytes, len, vi.sha256);
        vi.size = len;
    } else if (dp_store_version(c->store, target, &vi) != DP_OK ||
               dp_store_read(c->store, target, &bytes, &len) != DP_OK) {
        reply(c, &r->to,
              error_obj("stage %s: version %llu: %s", stage,
                        (unsigned long long)target,
                        dp_store_errmsg(c->store)));
        req_free(r);
        return;
    }
    send_verified(c, r, stage, &vi, signer_of(c, target, vi.key_id));
    swap_and_watch(c, r, cs, bytes, len, NULL, target, watch_ms_of(j));
    free(bytes);
}

static void op_status(fl__ctl *c, req *r)
{
    cJSON *o = event_obj("status", NULL, 1, 1);
    cJSON *arr = cJSON_CreateArray();
    for (uint32_t i = 0; i < c->ncs; i++) {
        cstage *cs = &c->cs[i];
        fl_swap_status ss;
        const char *state = cs->active ? "active" : "declared";
        if (fl_runtime_swap_status(c->rt, cs->d->name, &ss) == FL_OK) {
            if (ss.state == FL_SWAP_WATCHING || cs->watched)
                state = "watching";
            else if (ss.state == FL_SWAP_ROLLED_BACK)
                state = "rolled-back";
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "stage", cs->d->name);
        cJSON_AddStringToObject(e, "kind", cs->d->kind);
        cJSON_AddNumberToObject(e, "version", (double)cs->active);
        cJSON_AddStringToObject(e, "state", state);
        cJSON_AddItemToArray(arr, e);
    }
    cJSON_AddItemToObject(o, "stages", arr);
    reply(c, &r->to, o);
}

/* Sends a request (json + blob) from `to` on to the connected node below
 * called `node`, under an id of this node's; its replies are relayed to
 * `to`.  Any thread. */
static void forward_to(fl__ctl *c, const target *to, const char *node,
                       const char *json, size_t json_len, const uint8_t *blob,
                       size_t blob_len)
{
    fl__net *n = fl__rt_net(c->rt);
    nt_buf b;
    nt_conn *used = NULL;
    uint32_t my_id;
    int rc;

    pthread_mutex_lock(&c->mu);
    if (c->nfwd == c->capfwd) {
        uint32_t nc = c->capfwd ? c->capfwd * 2 : 16;
        fwd *nf = realloc(c->fwds, nc * sizeof *nf);
        if (!nf) {
            pthread_mutex_unlock(&c->mu);
            reply(c, to, error_obj("out of memory"));
            return;
        }
        c->fwds = nf;
        c->capfwd = nc;
    }
    if (++c->next_id == 0)
        c->next_id = 1;
    my_id = c->next_id;
    fwd *f = &c->fwds[c->nfwd++];
    memset(f, 0, sizeof *f);
    f->my_id = my_id;
    f->to = *to;
    snprintf(f->node, sizeof f->node, "%s", node);
    pthread_mutex_unlock(&c->mu);

    nt_buf_init(&b, 0);
    rc = -3;
    if (n && nt_put_ctl_head(&b, NT_CTL, my_id, json, json_len, blob,
                             blob_len) == NT_OK) /* the module: no copy */
        rc = fl__net_ctl_send_peer(n, node, b.data, b.len, blob, blob_len,
                                   &used);
    else if (!n)
        rc = -1;
    nt_buf_free(&b);

    pthread_mutex_lock(&c->mu);
    for (uint32_t i = 0; i < c->nfwd; i++) {
        if (c->fwds[i].my_id != my_id)
            continue;
        if (rc == 0)
            c->fwds[i].via = used;
        else
            c->fwds[i] = c->fwds[--c->nfwd];
        break;
    }
    pthread_mutex_unlock(&c->mu);
    if (rc == 0)
        clog_("request %u forwarded to %s", (unsigned)to->id, node);
    else if (rc == -1)
        reply(c, to, error_obj("no node %s connects to %s", node, c->name));
    else
        reply(c, to, error_obj("node %s is not connected", node));
}

/* One request, on the control thread.  Frees r (or hands it on). */
static void handle(fl__ctl *c, req *r)
{
    job_wait(c); /* the store is this thread's again */
    cJSON *j = cJSON_ParseWithLength(r->json, r->json_len);
    const char *op, *node, *stage;
    cstage *cs = NULL;

    if (!cJSON_IsObject(j)) {
        reply(c, &r->to, error_obj("bad JSON in the request"));
        goto done;
    }
    op = jstr(j, "op");
    node = jstr(j, "node");
    if (!op) {
        reply(c, &r->to, error_obj("missing field \"op\""));
        goto done;
    }
    if (!node) {
        reply(c, &r->to, error_obj("missing field \"node\""));
        goto done;
    }
    if (strcmp(node, c->name) != 0) {
        if (r->to.kind == TG_DOWN) /* one hop only */
            reply(c, &r->to, error_obj("no node %s connects to %s", node,
                                       c->name));
        else
            forward_to(c, &r->to, node, r->json, r->json_len, r->blob,
                       r->blob_len);
        goto done;
    }
    if (strcmp(op, "status") == 0) {
        op_status(c, r);
        goto done;
    }
    if (strcmp(op, "deploy") != 0 && strcmp(op, "versions") != 0 &&
        strcmp(op, "rollback") != 0) {
        reply(c, &r->to, error_obj("unknown op %s", op));
        goto done;
    }
    stage = jstr(j, "stage");
    cs = need_stage(c, r, stage);
    if (!cs)
        goto done;
    if (strcmp(op, "versions") == 0) {
        op_versions(c, r, cs);
        goto done;
    }
    if (cs->watched) { /* after the running watch's final reply */
        r->next = c->defh;
        c->defh = r;
        cJSON_Delete(j);
        return;
    }
    if (strcmp(op, "deploy") == 0)
        op_deploy(c, r, j, cs);
    else
        op_rollback(c, r, j, cs);
    cJSON_Delete(j);
    return;
done:
    cJSON_Delete(j);
    req_free(r);
}

static void *ctl_main(void *arg)
{
    fl__ctl *c = arg;
    /* A module's decode, validation and translation allocate a few times
     * its size: faulted in now, not during the first deploy. */
    pl_heap_warm(CTL_WARM);
    pthread_mutex_lock(&c->mu);
    while (!c->quit) {
        req *r = c->qh;
        if (r) {
            c->qh = r->next;
            if (!c->qh)
                c->qt = NULL;
            pthread_mutex_unlock(&c->mu);
            handle(c, r);
            poll_watches(c);
            pthread_mutex_lock(&c->mu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long add = c->nw ? CTL_TICK_NS : CTL_IDLE_NS;
        for (uint32_t i = 0; i < c->nw; i++)
            if (!c->w[i].first_sent) /* "first" is awaited: look sooner */
                add = CTL_FIRST_TICK_NS;
        ts.tv_nsec += add;
        if (ts.tv_nsec >= 1000000000l) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000l;
        }
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
        pthread_mutex_unlock(&c->mu);
        poll_watches(c);
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    job_wait(c);
    return NULL;
}

/* ---- Life cycle. ------------------------------------------------------- */

/* Starts every local stage on its persisted active version. */
static void preset_active(fl__ctl *c)
{
    for (uint32_t i = 0; i < c->ncs; i++) {
        cstage *cs = &c->cs[i];
        dp_version_info vi;
        uint8_t *bytes = NULL;
        size_t len = 0;
        char err[512];
        if (!dp_name_ok(cs->d->name) ||
            dp_store_active(c->store, cs->d->name, &vi) != DP_OK)
            continue;
        if (dp_store_read(c->store, vi.version, &bytes, &len) != DP_OK) {
            fprintf(stderr,
                    "isoflow: stage %s: deployed version %llu cannot be read "
                    "(%s); running the flow file's module\n",
                    cs->d->name, (unsigned long long)vi.version,
                    dp_store_errmsg(c->store));
            continue;
        }
        err[0] = '\0';
        if (fl__swap_preset(c->rt, cs->d->name, bytes, len,
                            (uint32_t)vi.version, err, sizeof err) != FL_OK) {
            fprintf(stderr,
                    "isoflow: stage %s: deployed version %llu cannot be "
                    "loaded (%s); running the flow file's module\n",
                    cs->d->name, (unsigned long long)vi.version, err);
        } else {
            cs->active = vi.version;
            fprintf(stderr,
                    "isoflow: stage %s: running deployed version %llu "
                    "(sha256 %s)\n",
                    cs->d->name, (unsigned long long)vi.version, vi.sha256);
        }
        free(bytes);
    }
}

fl_status fl__ctl_new(fl_runtime *rt, const fl_graph *g, const fl_run_opts *o,
                      fl__ctl **out, char *err, size_t errlen)
{
    fl__ctl *c = calloc(1, sizeof *c);
    char e2[512];
    *out = NULL;
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return FL_NOMEM;
    }
    c->rt = rt;
    c->g = g;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pthread_mutex_init(&c->jmu, NULL);
    pthread_cond_init(&c->jcv, NULL);
    snprintf(c->name, sizeof c->name, "%s", o->node ? o->node : "");
    snprintf(c->dir, sizeof c->dir, "%s/%s/deploy",
             o->state_dir ? o->state_dir : "state", c->name);
    c->cs = calloc(g->nstages + 1, sizeof *c->cs);
    if (!c->cs) {
        snprintf(err, errlen, "out of memory");
        fl__ctl_free(c);
        return FL_NOMEM;
    }
    for (uint32_t i = 0; i < g->nstages; i++) {
        const fl__stage *d;
        uint32_t ninst = 0;
        if (!fl__rt_stage_at(rt, i, &d, &ninst) || ninst == 0 || !d->kind ||
            (strcmp(d->kind, "wasm") != 0 && strcmp(d->kind, "native") != 0))
            continue;
        c->cs[c->ncs++].d = d;
    }
    if (pl_mkdirs(c->dir) != 0) {
        snprintf(err, errlen, "cannot create %s: %s", c->dir,
                 strerror(errno));
        fl__ctl_free(c);
        return FL_IO;
    }
    if (dp_store_open(c->dir, NT_MAX_PAYLOAD, &c->store, e2, sizeof e2) !=
        DP_OK) {
        snprintf(err, errlen, "version store %s: %s", c->dir, e2);
        fl__ctl_free(c);
        return FL_IO;
    }
    /* A deploy's commit does not wait for the disk before the swap: its
     * syncs run with the activation, on the side, before "first". */
    dp_store_defer_syncs(c->store, 1);
    if (o->trust) {
        c->trust = dp_trust_new();
        if (!c->trust ||
            dp_trust_load(c->trust, o->trust, e2, sizeof e2) != DP_OK) {
            snprintf(err, errlen, "--trust %s: %s", o->trust,
                     c->trust ? e2 : "out of memory");
            fl__ctl_free(c);
            return FL_ARG;
        }
    }
    preset_active(c);
    *out = c;
    return FL_OK;
}

fl_status fl__ctl_start(fl__ctl *c)
{
    if (!c || c->running)
        return FL_OK;
    c->quit = 0;
    if (pthread_create(&c->th, NULL, ctl_main, c) != 0)
        return FL_NOMEM;
    c->running = 1;
    return FL_OK;
}

void fl__ctl_stop(fl__ctl *c)
{
    if (!c || !c->running)
        return;
    pthread_mutex_lock(&c->mu);
    c->quit = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->th, NULL);
    c->running = 0;
    job_thread_stop(c);
}

void fl__ctl_free(fl__ctl *c)
{
    if (!c)
        return;
    fl__ctl_stop(c);
    job_thread_stop(c); /* also when the control thread never ran */
    while (c->qh) {
        req *r = c->qh;
        c->qh = r->next;
        req_free(r);
    }
    while (c->defh) {
        req *r = c->defh;
        c->defh = r->next;
        req_free(r);
    }
    for (uint32_t i = 0; i < c->nw; i++)
        req_free(c->w[i].r);
    free(c->w);
    free(c->cs);
    free(c->ops);
    free(c->fwds);
    free(c->sg);
    if (c->store)
        dp_store_close(c->store);
    if (c->trust)
        dp_trust_free(c->trust);
    pthread_mutex_destroy(&c->jmu);
    pthread_cond_destroy(&c->jcv);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* ---- Link callbacks (loop thread). ------------------------------------- */

int fl__ctl_on_open(fl__ctl *c, nt_conn *conn, const char *peer)
{
    int rc = 0;
    if (!c)
        return -1;
    pthread_mutex_lock(&c->mu);
    if (c->nops == c->capops) {
        uint32_t nc = c->capops ? c->capops * 2 : 8;
        opconn *no = realloc(c->ops, nc * sizeof *no);
        if (!no)
            rc = -1;
        else {
            c->ops = no;
            c->capops = nc;
        }
    }
    if (rc == 0) {
        c->ops[c->nops].conn = conn;
        c->ops[c->nops].gen = ++c->next_gen;
        c->nops++;
    }
    pthread_mutex_unlock(&c->mu);
    clog_("operator %s connected%s", peer,
          nt_conn_resumed(conn) ? " (TLS session resumed)" : "");
    return rc;
}

/* The registration number of an operator connection, or 0.  Under mu. */
static uint64_t op_gen(const fl__ctl *c, nt_conn *conn)
{
    for (uint32_t i = 0; i < c->nops; i++)
        if (c->ops[i].conn == conn)
            return c->ops[i].gen;
    return 0;
}

/* Forgets an operator connection and its forwards.  Under mu. */
static void op_forget(fl__ctl *c, nt_conn *conn)
{
    for (uint32_t i = 0; i < c->nops; i++)
        if (c->ops[i].conn == conn) {
            c->ops[i] = c->ops[--c->nops];
            break;
        }
    for (uint32_t i = 0; i < c->nfwd;) {
        if (c->fwds[i].to.kind == TG_OPERATOR && c->fwds[i].to.conn == conn)
            c->fwds[i] = c->fwds[--c->nfwd];
        else
            i++;
    }
}

/* A CTL_REPLY from a node below: relayed to the operator with the
 * original id (the forward ends with the final reply). */
static void relay(fl__ctl *c, nt_conn *conn, const nt_frame *f)
{
    uint32_t id;
    const char *json;
    size_t jlen, blen;
    const uint8_t *blob;
    char err[160];
    if (nt_ctl_decode(f, &id, &json, &jlen, &blob, &blen, err, sizeof err) !=
        NT_OK) {
        clog_("bad CTL_REPLY from %s: %s", nt_conn_peer(conn), err);
        return;
    }
    cJSON *j = cJSON_ParseWithLength(json, jlen);
    int final = j && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j,
                                                                   "final"));
    cJSON_Delete(j);
    pthread_mutex_lock(&c->mu);
    for (uint32_t i = 0; i < c->nfwd; i++) {
        fwd *fw = &c->fwds[i];
        if (fw->my_id != id || (fw->via && fw->via != conn))
            continue;
        target to = fw->to;
        if (final)
            c->fwds[i] = c->fwds[--c->nfwd];
        if (to.kind == TG_CALLBACK) {
            pthread_mutex_unlock(&c->mu);
            char *copy = malloc(jlen + 1);
            if (copy) {
                memcpy(copy, json, jlen);
                copy[jlen] = '\0';
                deliver(c, &to, copy, jlen, 0);
                free(copy);
            }
            return;
        }
        deliver(c, &to, json, jlen, 1);
        break;
    }
    pthread_mutex_unlock(&c->mu);
}

/* A final error reply's JSON text (malloc'ed; NULL when out of memory). */
static char *final_error_text(const fl__ctl *c, const char *error)
{
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    if (!o)
        return NULL;
    cJSON_AddBoolToObject(o, "ok", 0);
    cJSON_AddBoolToObject(o, "final", 1);
    cJSON_AddStringToObject(o, "error", error);
    cJSON_AddStringToObject(o, "node", c->name);
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* The final refusal of a CTL from a peer that may not deploy (logged). */
static char *refusal_text(const fl__ctl *c, const char *peer, int role)
{
    char error[256];
    snprintf(error, sizeof error,
             "refused: only an operator may deploy (peer %s has role %s)",
             peer && peer[0] ? peer : "?", nt_role_name(role));
    clog_("%s", error);
    return final_error_text(c, error);
}

int fl__ctl_on_frame(fl__ctl *c, nt_conn *conn, const nt_frame *f)
{
    uint64_t gen;
    if (!c)
        return 0;
    pthread_mutex_lock(&c->mu);
    gen = op_gen(c, conn);
    if (gen && f->type != NT_CTL) {
        op_forget(c, conn);
        pthread_mutex_unlock(&c->mu);
        clog_("closing operator %s: it sent a frame of type %u (only CTL "
              "is accepted)", nt_conn_peer(conn), (unsigned)f->type);
        nt_conn_close(conn);
        return 1;
    }
    pthread_mutex_unlock(&c->mu);
    if (f->type != NT_CTL && f->type != NT_CTL_REPLY)
        return 0;
    if (f->type == NT_CTL_REPLY) {
        relay(c, conn, f);
        return 1;
    }
    uint32_t id;
    const char *json;
    size_t jlen, blen;
    const uint8_t *blob;
    char err[160];
    if (nt_ctl_decode(f, &id, &json, &jlen, &blob, &blen, err, sizeof err) !=
        NT_OK) {
        clog_("bad CTL from %s: %s", nt_conn_peer(conn), err);
        return 1;
    }
    target to;
    memset(&to, 0, sizeof to);
    to.id = id;
    to.conn = conn;
    if (gen) {
        to.kind = TG_OPERATOR;
        to.gen = gen;
        /* For a node below: forwarded from here (the link's thread), not
         * copied to the control thread first.  Anything else, malformed
         * requests included, is the control thread's. */
        cJSON *j = cJSON_ParseWithLength(json, jlen);
        const char *op = j ? jstr(j, "op") : NULL;
        const char *node = j ? jstr(j, "node") : NULL;
        if (op && node && strcmp(node, c->name) != 0) {
            forward_to(c, &to, node, json, jlen, blob, blen);
            cJSON_Delete(j);
            return 1;
        }
        cJSON_Delete(j);
    } else {
        char name[NT_MAX_NAME + 1] = "";
        int role = 0;
        fl__net *n = fl__rt_net(c->rt);
        if (!n || fl__net_ctl_peer(n, conn, name, sizeof name, &role) != 1) {
            char *text = refusal_text(c, name, role);
            nt_buf b;
            nt_buf_init(&b, 0);
            if (text && nt_put_ctl(&b, NT_CTL_REPLY, id, text, strlen(text),
                                   NULL, 0) == NT_OK)
                nt_conn_send(conn, b.data, b.len); /* valid during the call */
            nt_buf_free(&b);
            cJSON_free(text);
            return 1;
        }
        to.kind = TG_DOWN;
    }
    req *r = req_new(&to, json, jlen, blob, blen);
    if (!r) {
        clog_("out of memory: control request %u dropped", (unsigned)id);
        return 1;
    }
    enqueue(c, r, 0);
    return 1;
}

void fl__ctl_on_close(fl__ctl *c, nt_conn *conn)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    if (op_gen(c, conn)) {
        op_forget(c, conn);
        pthread_mutex_unlock(&c->mu);
        return;
    }
    /* a link below with forwards in flight: they fail */
    for (uint32_t i = 0; i < c->nfwd;) {
        fwd *fw = &c->fwds[i];
        if (fw->via != conn) {
            i++;
            continue;
        }
        char error[128];
        snprintf(error, sizeof error, "node %s is not connected", fw->node);
        char *text = final_error_text(c, error);
        target to = fw->to;
        c->fwds[i] = c->fwds[--c->nfwd];
        if (text && to.kind == TG_OPERATOR)
            deliver(c, &to, text, strlen(text), 1);
        cJSON_free(text);
    }
    pthread_mutex_unlock(&c->mu);
}

fl_status fl__ctl_submit(fl__ctl *c, const char *json, size_t json_len,
                         const uint8_t *blob, size_t blob_len,
                         fl__ctl_reply_fn fn, void *user)
{
    target to;
    memset(&to, 0, sizeof to);
    to.kind = TG_CALLBACK;
    to.fn = fn;
    to.user = user;
    req *r = req_new(&to, json, json_len, blob, blob_len);
    if (!r)
        return FL_NOMEM;
    enqueue(c, r, 0);
    return FL_OK;
}

fl_status fl__ctl_submit_peer(fl__ctl *c, const char *peer, int role,
                              const char *json, size_t json_len,
                              fl__ctl_reply_fn fn, void *user)
{
    (void)json;
    (void)json_len;
    char *text = refusal_text(c, peer, role);
    if (!text)
        return FL_NOMEM;
    if (fn)
        fn(user, text, strlen(text));
    cJSON_free(text);
    return FL_OK;
}
