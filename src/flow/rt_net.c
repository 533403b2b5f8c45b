/*
 * rt_net.c - node mode: links a runtime that runs one node's part of a flow
 * to the other nodes (net.h): a spool per outgoing link direction, DATA
 * frames from it, cumulative ACKs that pass a message only once it and all
 * it caused on this node are done (ingress tokens), duplicates dropped by
 * link seq, watermarks persisted in the state directory.  docs/NODES.md
 * describes the protocol, the ack rule and the state files.
 *
 * Threads: the link loop's callbacks only record (frames are copied into
 * the peer's inbox); one pump thread injects inbox messages into the
 * runtime, advances ack watermarks and sends spooled messages, visiting
 * only the peers on its active list.  Workers append to spools through
 * fl__net_send (buffered in memory: written before the pump reads them,
 * before a watermark that covers their ingress message, and on a device
 * at every pump pass); fresh records wait up to NET_COALESCE_NS for more
 * to share a DATA frame.  One mutex (n->mu) guards all the state below;
 * peers are found by hash (name, connection), so its sections are O(1)
 * per message however many device links an edge holds; nt_conn_close is
 * never called with it held.  Demand credits (CREDIT) and pull asks (PULL) cross links
 * as docs/NODES.md describes.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "platform.h"
#include "net.h"
#include "rt_int.h"

#define NET_WINDOW 4096u      /* records sent but not acknowledged, per link */
#define NET_FRAME_MSGS 512u   /* messages per DATA frame at most */
#define NET_PUMP_NS 1000000l  /* pump period when idle (1 ms) */
#define NET_SEQ_LEASE 4096u   /* device seq numbers reserved ahead on disk */
#define NET_PREFIX 3u         /* wire payload prefix: kind, src + 1 (u16) */
#define NET_PATH 1024
#define NET_DEFAULT_CREDITS 16u /* a demand source's credits when unset
                                   (RT_DEFAULT_CREDITS of runtime.c) */

#define NET_MAX_LINKSRC 8u   /* demand/pull sources tracked per node */
#define NET_DOWN_BOUND (2u * NET_WINDOW) /* edge: records unacknowledged by
                                  the node below above which the credits
                                  owed to devices are withheld (default of
                                  ISOFLOW_NET_BACKLOG) */
#define NET_SYNC_NS 50000000ull /* batch sync point of spools + watermarks */
#define NET_MAX_WMFD 8u         /* watermark fds awaiting the sync point */
#define NET_COALESCE_NS 200000ull /* a record waits at most this long for */
#define NET_COALESCE_RECS 64u     /* this many to share its DATA frame */
#define NET_WBUF (64u * 1024u)  /* edge/cloud: spool appends buffered in
                                   memory until the next ACK or read */
#define NET_ACK_DELAY_MS 1500u  /* many device links: an ACK to a device
                                   waits at most this long for more records
                                   (default of ISOFLOW_NET_ACK_DELAY_MS) */
#define NET_ACK_RECS 64u        /* ... or until this many are unacknowledged */

typedef struct rxbuf {        /* one DATA frame payload waiting for the pump */
    struct rxbuf *next;
    uint32_t len;
    uint8_t data[];
} rxbuf;

typedef struct peer {
    char name[NT_MAX_NAME + 1];
    int below;                /* 1: it connects to us; 0: we connect to it */
    nt_conn *conn;            /* current connection (below: accepted one) */
    int ready;                /* HELLO/WELCOME exchanged on conn */
    nt_spool *sp;             /* what we send it (opened lazily) */
    uint64_t sent, acked;     /* highest link seq sent / acknowledged */
    uint64_t in_seen;         /* highest link seq taken from it */
    uint64_t in_done;         /* ack watermark (persisted) */
    uint64_t in_done_sent;    /* last ACK sent */
    uint64_t in_wm;           /* last watermark written */
    uint64_t ack_due;         /* monotonic ns when a delayed ACK is due, or
                                 0 (none waiting; see ack_now) */
    int inackq;               /* on n->aqhead (its ACK waits for ack_due) */
    struct peer *aqprev, *aqnext;
    int wmfd;                 /* in-NAME.seq, or n->devwm */
    off_t wmoff;              /* the watermark's offset in wmfd */
    fl__tok *thead, *ttail;   /* ingress tokens in seq order */
    rxbuf *rxh, *rxt;         /* inbox */
    size_t rxoff;             /* next message of rxh */
    uint32_t owe_n[NET_MAX_LINKSRC]; /* credits owed per n->csrc entry, sent
                                  after the ACK that covers them */
    uint64_t pulls;           /* PULL frames sent to it */
    int sdirty;               /* on n->sdirty: appended since the sync point */
    struct peer *snext;
    uint64_t unsent_since;    /* monotonic ns of the append of sent + 1 */
    int wpend;                /* on n->wpend: buffered appends not written */
    struct peer *wnext;
    int isdev;                /* a device connecting to us */
    int active;               /* on the pump's active list */
    struct peer *anext;
} peer;

/* Open-addressing hash map from a pointer (a connection) to a pointer
 * (its peer or unbound record): linear probing, deletion by backward
 * shift, at most half full.  Lookups are O(1) for thousands of links. */
typedef struct pent {
    const void *k;
    void *v;
} pent;
typedef struct pmap {
    pent *e;
    uint32_t cap, n;          /* cap: 0 or a power of two */
} pmap;

/* An ingress token and the demand source stage its message came from (the
 * credit to return when it is done), or -1. */
typedef struct ntok {
    fl__tok t;
    int32_t csrc;             /* index in n->csrc, or -1 */
} ntok;

/* A demand or pull source of the flow placed on devices (docs/NODES.md,
 * "Demand and pull across links"). */
typedef struct linksrc {
    uint32_t stage;
    uint32_t src;             /* graph source index */
    uint32_t window;          /* the source's credits */
    uint64_t period;          /* pull: ns between asks (scaled) */
    uint64_t due;             /* pull (consumer): monotonic ns of next ask */
    int local;                /* device node: a local link-fed instance */
    int initial;              /* device: the next CREDIT is the initial grant */
    int64_t granted;          /* device: the window granted last */
    uint64_t acked, credited; /* device: records acknowledged / credits got */
} linksrc;

typedef struct unbound {      /* accepted, no HELLO yet (heap, in n->ubmap) */
    nt_conn *c;
    char cn[NT_MAX_NAME + 1]; /* certificate name ("" when plaintext) */
} unbound;

struct fl__net {
    fl_runtime *rt;
    const fl_graph *g;
    char name[NT_MAX_NAME + 1];
    int layer;                /* fl__layer of this node */
    int32_t dev;              /* device node: device index, else -1 */
    const char *listen;       /* borrowed from the graph */
    char dir[NET_PATH];       /* STATE/NAME */
    uint64_t flow_hash;
    nt_tls *tls;
    nt_loop *loop;
    nt_listener *ls;
    nt_callbacks cb;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t th;
    int running, quit, paused;
    int pump_idle;            /* the pump waits on cv (wake_pump) */
    peer **peers;             /* every peer, in creation order */
    uint32_t npeers, cap;
    peer **byname;            /* hash table of peers by name (ncap slots) */
    uint32_t ncap;
    pmap byconn;              /* connection -> peer */
    pmap ubmap;               /* connection -> unbound */
    peer *ahead, *atail;      /* peers the pump must visit */
    peer *aqhead, *aqtail;    /* delayed ACKs, in ack_due order */
    uint64_t ack_delay;       /* ns an ACK to a device may wait (0: none) */
    peer *down;               /* the node we connect to, or NULL */
    nt_buf enc, out;          /* record encoding (workers), frames (pump) */
    uint8_t *rec;             /* one record */
    uint64_t n_in, n_out;
    uint64_t seq_limit;       /* device node: seq numbers leased on disk */
    int seqfd;
    uint64_t act_seen;        /* device node: highest origin seq of an
                                 actuation taken / fully delivered */
    uint64_t act_done;
    int actfd;                /* act.seq */
    uint64_t logged_drop;
    linksrc csrc[NET_MAX_LINKSRC]; /* demand sources on devices */
    uint32_t ncsrc;
    linksrc psrc[NET_MAX_LINKSRC]; /* pull sources on devices */
    uint32_t npsrc;
    uint64_t asks_in;         /* device: PULL frames answered */
    int quiet_links;          /* many devices: no per-device link lines */
    int devwm;                /* in-devices.seq: the watermarks of the
                                 device links, 21 bytes per device index */
    /* Data path (docs/NODES.md "Durability", "Credits across the edge"). */
    uint8_t sync;             /* nt_sync of spools and watermarks */
    uint64_t spool_max;       /* spool size bound (0: default) */
    uint8_t spool_full;       /* nt_full policy of the spools */
    uint64_t sync_due;        /* monotonic ns of the next batch sync point */
    peer *sdirty;             /* peers whose spool took appends since */
    peer *wpend;              /* peers whose spool holds buffered appends */
    uint64_t wfail;           /* failed flush_appends (logged once) */
    int wmdirty[NET_MAX_WMFD];/* watermark fds written since */
    uint32_t nwmdirty;
    int withheld;             /* edge: device credits held back (backlog) */
    uint64_t down_bound;      /* edge: NET_DOWN_BOUND or ISOFLOW_NET_BACKLOG */
    uint64_t down_max;        /* edge: highest backlog toward the node below */
};

static void nlog(const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static void nlog(const char *fmt, ...)
{
    va_list ap;
    char line[512];
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "isoflow: node: %s\n", line);
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

/* FNV-1a 64 of the flow file's bytes (0 when it cannot be read). */
static uint64_t file_hash(const char *path)
{
    uint64_t h = 14695981039346656037ull;
    unsigned char buf[4096];
    size_t n;
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < n; i++)
            h = (h ^ buf[i]) * 1099511628211ull;
    fclose(f);
    return h;
}


/* Reads a u64 written as decimal text at byte offset off; 0 when missing. */
static uint64_t read_u64_at(int fd, off_t off)
{
    char buf[22];
    ssize_t r = pread(fd, buf, 21, off);
    if (r <= 0)
        return 0;
    buf[r] = '\0';
    return strtoull(buf, NULL, 10);
}

/* Overwrites the 21 bytes at off with v as fixed-width decimal and a
 * newline (20 digits: the write never changes the length, so a crash leaves
 * the old or the new value). */
static void write_u64_at(int fd, off_t off, uint64_t v)
{
    char buf[24];
    int k = snprintf(buf, sizeof buf, "%020llu\n", (unsigned long long)v);
    if (pwrite(fd, buf, (size_t)k, off) != k)
        nlog("cannot write a watermark: %s", strerror(errno));
}

static uint64_t read_u64(int fd) { return read_u64_at(fd, 0); }
static void write_u64(int fd, uint64_t v) { write_u64_at(fd, 0, v); }

/* The device index of `name` when it is a device connecting to this node,
 * else -1. */
static int64_t device_of(const fl__net *n, const char *name)
{
    const fl_graph *g = n->g;
    int64_t d = fl__graph_device_index(g, name); /* O(1): a hash */
    if (d < 0)
        return -1;
    for (uint32_t k = 0; k < g->ngroups; k++) {
        const fl__group *gr = &g->groups[k];
        if (gr->layer == FL__LAYER_DEVICE && gr->connect_idx >= 0 &&
            (uint64_t)d >= gr->first_device &&
            (uint64_t)d - gr->first_device < gr->count)
            return strcmp(g->nodes[gr->connect_idx].name, n->name) == 0 ? d
                                                                        : -1;
    }
    return -1;
}

static uint32_t ptr_hash(const void *k)
{
    uint64_t x = (uint64_t)(uintptr_t)k * 0x9E3779B97F4A7C15ull;
    return (uint32_t)(x >> 32);
}

static uint32_t name_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* The value of key k in m, or NULL. */
static void *pmap_get(const pmap *m, const void *k)
{
    if (!m->cap || !k)
        return NULL;
    for (uint32_t i = ptr_hash(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->e[i].k == k)
            return m->e[i].v;
        if (!m->e[i].k)
            return NULL;
    }
}

/* Sets k -> v (replacing); false when out of memory. */
static bool pmap_put(pmap *m, const void *k, void *v)
{
    if ((m->n + 1) * 2 > m->cap) {
        uint32_t nc = m->cap ? m->cap * 2 : 64;
        pent *ne = calloc(nc, sizeof *ne);
        if (!ne)
            return false;
        for (uint32_t j = 0; j < m->cap; j++)
            if (m->e[j].k) {
                uint32_t i = ptr_hash(m->e[j].k) & (nc - 1);
                while (ne[i].k)
                    i = (i + 1) & (nc - 1);
                ne[i] = m->e[j];
            }
        free(m->e);
        m->e = ne;
        m->cap = nc;
    }
    uint32_t i = ptr_hash(k) & (m->cap - 1);
    while (m->e[i].k && m->e[i].k != k)
        i = (i + 1) & (m->cap - 1);
    if (!m->e[i].k)
        m->n++;
    m->e[i].k = k;
    m->e[i].v = v;
    return true;
}

/* Removes k (backward shift: no tombstones). */
static void pmap_del(pmap *m, const void *k)
{
    uint32_t i, j, mask = m->cap - 1;
    if (!m->cap || !k)
        return;
    for (i = ptr_hash(k) & mask; m->e[i].k != k; i = (i + 1) & mask)
        if (!m->e[i].k)
            return;
    m->n--;
    for (j = i;;) {
        m->e[i].k = NULL;
        m->e[i].v = NULL;
        for (;;) {
            j = (j + 1) & mask;
            if (!m->e[j].k)
                return;
            uint32_t h = ptr_hash(m->e[j].k) & mask;
            /* e[j] may move to i when its home h is not in (i, j]. */
            if (i <= j ? (h <= i || h > j) : (h <= i && h > j))
                break;
        }
        m->e[i] = m->e[j];
        i = j;
    }
}

/* Points p at connection c (NULL: none), keeping n->byconn in step. */
static void set_conn(fl__net *n, peer *p, nt_conn *c)
{
    if (p->conn && pmap_get(&n->byconn, p->conn) == p)
        pmap_del(&n->byconn, p->conn);
    p->conn = c;
    if (c && !pmap_put(&n->byconn, c, p))
        nlog("out of memory indexing the link of %s", p->name);
}

/* Puts p on the pump's active list (it has something to do). */
static void mark_active(fl__net *n, peer *p)
{
    if (p->active)
        return;
    p->active = 1;
    p->anext = NULL;
    if (n->atail)
        n->atail->anext = p;
    else
        n->ahead = p;
    n->atail = p;
}

/* Takes p off the queue of delayed ACKs (when it is on it). */
static void ackq_del(fl__net *n, peer *p)
{
    if (!p->inackq)
        return;
    if (p->aqprev)
        p->aqprev->aqnext = p->aqnext;
    else
        n->aqhead = p->aqnext;
    if (p->aqnext)
        p->aqnext->aqprev = p->aqprev;
    else
        n->aqtail = p->aqprev;
    p->aqprev = p->aqnext = NULL;
    p->inackq = 0;
}

/* Delays p's ACK until `due` (now + n->ack_delay): appended at the tail,
 * the queue stays in due order since the delay is the same for all. */
static void ackq_add(fl__net *n, peer *p, uint64_t due)
{
    p->ack_due = due;
    p->aqnext = NULL;
    p->aqprev = n->aqtail;
    if (n->aqtail)
        n->aqtail->aqnext = p;
    else
        n->aqhead = p;
    n->aqtail = p;
    p->inackq = 1;
}

/* p's spool, opened on first use (an idle link holds no spool files).
 * NULL when it cannot be opened.  Under n->mu. */
static nt_spool *spool_of(fl__net *n, peer *p)
{
    char path[NET_PATH + 128], err[256];
    nt_spool_opts so;
    if (p->sp)
        return p->sp;
    snprintf(path, sizeof path, "%s/out-%s", n->dir, p->name);
    nt_spool_opts_default(&so);
    so.sync = n->sync;
    if (n->spool_max)
        so.max_bytes = n->spool_max;
    so.full = n->spool_full;
    /* On an edge or a cloud appends are written in batches (docs/NODES.md
     * "Durability"): before the ACK that depends on them (flush_appends)
     * and before they are read for sending; a crash there loses nothing,
     * the sender resends what was not acknowledged.  A device is where
     * messages start: nothing upstream would resend them, so each append
     * is written before fl__net_send returns (it then survives a crash of
     * the device's process). */
    so.write_buffer = n->dev >= 0 ? 0 : NET_WBUF;
    if (nt_spool_open(path, &so, &p->sp, err, sizeof err) != NT_OK) {
        nlog("cannot open spool %s: %s", path, err);
        p->sp = NULL;
        return NULL;
    }
    nt_spool_stats st;
    nt_spool_stats_get(p->sp, &st);
    p->acked = p->sent = st.first_seq ? st.first_seq - 1 : 0;
    return p->sp;
}

/* The seq of the last record appended to sp (0: none). */
static uint64_t spool_last(nt_spool *sp)
{
    nt_spool_stats st;
    nt_spool_stats_get(sp, &st);
    return st.next_seq - 1;
}

/* The peer called `name`, or NULL. */
static peer *peer_find(const fl__net *n, const char *name)
{
    if (!n->ncap)
        return NULL;
    for (uint32_t i = name_hash(name) & (n->ncap - 1);;
         i = (i + 1) & (n->ncap - 1)) {
        if (!n->byname[i])
            return NULL;
        if (strcmp(n->byname[i]->name, name) == 0)
            return n->byname[i];
    }
}

/* The peer called `name`, created (watermark opened; the spool too when
 * it exists on disk or `eager`, else on first use) when missing.  NULL
 * when its state cannot be opened.  Under n->mu. */
static peer *peer_get(fl__net *n, const char *name, int below, int eager)
{
    char path[NET_PATH + 128];
    struct stat sb;
    peer *p = peer_find(n, name);
    if (p)
        return p;
    if (n->npeers == n->cap) {
        uint32_t nc = n->cap ? n->cap * 2 : 16;
        peer **np = realloc(n->peers, nc * sizeof *np);
        if (!np)
            return NULL;
        n->peers = np;
        n->cap = nc;
    }
    if ((n->npeers + 1) * 2 > n->ncap) {
        uint32_t nc = n->ncap ? n->ncap * 2 : 64;
        peer **nb = calloc(nc, sizeof *nb);
        if (!nb)
            return NULL;
        for (uint32_t k = 0; k < n->npeers; k++) {
            uint32_t i = name_hash(n->peers[k]->name) & (nc - 1);
            while (nb[i])
                i = (i + 1) & (nc - 1);
            nb[i] = n->peers[k];
        }
        free(n->byname);
        n->byname = nb;
        n->ncap = nc;
    }
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    snprintf(p->name, sizeof p->name, "%s", name);
    p->below = below;
    p->wmfd = -1;
    snprintf(path, sizeof path, "%s/out-%s", n->dir, name);
    if ((eager || stat(path, &sb) == 0) && !spool_of(n, p)) {
        free(p);
        return NULL;
    }
    int64_t dev = below ? device_of(n, name) : -1;
    p->isdev = dev >= 0;
    if (dev >= 0 && n->devwm >= 0) { /* one file for every device */
        p->wmoff = (off_t)dev * 21;
    } else {
        snprintf(path, sizeof path, "%s/in-%s.seq", n->dir, name);
        p->wmfd = open(path, O_RDWR | O_CREAT, 0600);
        if (p->wmfd < 0) {
            nlog("cannot open %s: %s", path, strerror(errno));
            if (p->sp)
                nt_spool_close(p->sp);
            free(p);
            return NULL;
        }
    }
    p->in_done = p->in_seen = p->in_done_sent = p->in_wm =
        read_u64_at(p->wmfd >= 0 ? p->wmfd : n->devwm, p->wmoff);
    n->peers[n->npeers++] = p;
    uint32_t i = name_hash(p->name) & (n->ncap - 1);
    while (n->byname[i])
        i = (i + 1) & (n->ncap - 1);
    n->byname[i] = p;
    return p;
}

/* Does node/device `name` connect to this node? */
static int connects_to_me(const fl__net *n, const char *name)
{
    const fl_graph *g = n->g;
    for (uint32_t i = 0; i < g->nnodes; i++)
        if (g->nodes[i].connect_idx >= 0 &&
            strcmp(g->nodes[g->nodes[i].connect_idx].name, n->name) == 0 &&
            strcmp(g->nodes[i].name, name) == 0)
            return 1;
    return device_of(n, name) >= 0;
}

/* The node that runs layer `layer` for device `origin`: the device itself,
 * or the node its group connects to (and on up).  NULL when none. */
static const char *node_for(const fl__net *n, uint32_t origin, int layer)
{
    const fl_graph *g = n->g;
    if (origin >= g->ndevices)
        return NULL;
    if (layer == FL__LAYER_DEVICE)
        return g->device_names[origin];
    for (uint32_t k = 0; k < g->ngroups; k++) {
        const fl__group *gr = &g->groups[k];
        if (gr->layer != FL__LAYER_DEVICE || origin < gr->first_device ||
            origin - gr->first_device >= gr->count)
            continue;
        int32_t c = gr->connect_idx;
        while (c >= 0 && g->nodes[c].layer != layer)
            c = g->nodes[c].connect_idx;
        return c >= 0 ? g->nodes[c].name : NULL;
    }
    return NULL;
}

static uint64_t mono_now(void);

/* Wakes the pump when it waits (one signal per wait: the callers of a
 * busy node do not each pay a futex wake).  Under mu. */
static void wake_pump(fl__net *n)
{
    /* Many device links (more than 64 devices; docs/NODES.md "Scale"):
     * the pump is not woken by events but runs on its period
     * (NET_PUMP_NS), taking every link's frames, finished messages and
     * ACKs in one pass: with 10,000 links at 1 message/s each, a wake-up
     * per event cost more in thread switches than the rest of the path
     * (edge CPU 45-51 % -> 33-39 %), for at most 1 ms more per hop. */
    if (n->quiet_links)
        return;
    if (n->pump_idle) {
        n->pump_idle = 0;
        pthread_cond_signal(&n->cv);
    }
}

/* ------------------------------------------------------------------------ */
/* Sending side.                                                            */

/* See rt_int.h.  Record layout (docs/NODES.md): u32 origin, u64 seq, u64 ts,
 * u16 stage, u8 topic_len, topic, u32 len, then the wire payload: u8
 * FL__MSG_* kind, u16 src + 1, the message bytes. */
int fl__net_send(fl__net *n, const fl__wire *w)
{
    const fl__stage *t;
    const char *to;
    peer *p;
    uint64_t seq;
    size_t k = 0;
    int r = 0;

    if (w->stage >= n->g->nstages || w->len + NET_PREFIX > NT_MAX_MSG)
        return -1;
    t = &n->g->stages[w->stage];
    pthread_mutex_lock(&n->mu);
    if (w->kind == FL__MSG_DATA) {
        p = n->down;
    } else {
        to = t->layer < n->layer ? node_for(n, w->origin, t->layer) : NULL;
        p = to ? peer_get(n, to, 1, 0) : NULL;
    }
    if (!p || !spool_of(n, p)) {
        if (!n->logged_drop++)
            nlog("no link toward stage %s for a message of origin %u: dropped "
                 "(counted)", t->name, (unsigned)w->origin);
        pthread_mutex_unlock(&n->mu);
        return -1;
    }
    uint8_t *b = n->rec;
    put32(b + k, w->origin), k += 4;
    put64(b + k, w->seq), k += 8;
    put64(b + k, (uint64_t)w->ts), k += 8;
    put16(b + k, w->stage), k += 2;
    b[k++] = w->topic_len;
    memcpy(b + k, w->topic, w->topic_len), k += w->topic_len;
    put32(b + k, w->len + NET_PREFIX), k += 4;
    b[k++] = w->kind;
    put16(b + k, (uint16_t)(w->src + 1)), k += 2;
    memcpy(b + k, w->data, w->len), k += w->len;
    nt_status st = nt_spool_append(p->sp, b, k, &seq);
    if (st == NT_EFULL)
        r = 1;
    else if (st != NT_OK) {
        nlog("spool append to %s failed: %s", p->name, nt_status_msg(st));
        r = 1;
    } else {
        n->n_out++;
        mark_active(n, p);
        if (p == n->down && seq - p->acked > n->down_max)
            n->down_max = seq - p->acked;
        if (!p->sdirty && n->sync == NT_SYNC_BATCH) {
            p->sdirty = 1;
            p->snext = n->sdirty;
            n->sdirty = p;
        }
        if (!p->wpend) {
            p->wpend = 1;
            p->wnext = n->wpend;
            n->wpend = p;
        }
        /* Records are sent in frames of NET_COALESCE_RECS or after
         * NET_COALESCE_NS (pump_main): the pump is woken by the first
         * unsent one (to time it) and when a frame's worth is waiting. */
        if (seq == p->sent + 1) {
            p->unsent_since = mono_now();
            wake_pump(n);
        } else if (seq - p->sent >= NET_COALESCE_RECS) {
            wake_pump(n);
        }
    }
    pthread_mutex_unlock(&n->mu);
    return r;
}

typedef struct rdctx {
    fl__net *n;
    peer *p;
    uint32_t count;
    uint64_t last;
} rdctx;

/* nt_spool_read callback: one record into the DATA frame being built. */
static int add_rec(void *user, uint64_t seq, const uint8_t *rec, size_t len)
{
    rdctx *c = user;
    nt_msg m;
    size_t k = 0;
    if (seq <= c->p->sent)
        return 0;
    if (c->count >= NET_FRAME_MSGS || seq > c->p->acked + NET_WINDOW)
        return 1;
    if (len < 27)
        return 0; /* cannot happen: we wrote it */
    memset(&m, 0, sizeof m);
    m.seq = seq;
    m.origin = get32(rec), k += 4;
    m.origin_seq = get64(rec + k), k += 8;
    m.ts_ns = get64(rec + k), k += 8;
    m.stage = get16(rec + k), k += 2;
    m.topic_len = rec[k++];
    if (k + m.topic_len + 4 > len)
        return 0;
    m.topic = (const char *)rec + k, k += m.topic_len;
    m.len = get32(rec + k), k += 4;
    if (k + m.len != len || m.len < NET_PREFIX)
        return 0;
    m.data = rec + k;
    m.kind = rec[k] == FL__MSG_DATA ? 0 : 1;
    if (nt_data_add(&c->n->out, &m) != NT_OK)
        return 1;
    c->count++;
    c->last = seq;
    return 0;
}

/* Sends what p's spool holds beyond p->sent, within the window.  Under mu. */
static void send_spool(fl__net *n, peer *p)
{
    for (int round = 0; round < 8; round++) {
        rdctx c = {n, p, 0, 0};
        if (!p->sp || p->sent >= p->acked + NET_WINDOW)
            return;
        nt_buf_reset(&n->out);
        if (nt_data_begin(&n->out) != NT_OK)
            return;
        nt_spool_read(p->sp, p->sent + 1, add_rec, &c);
        if (!c.count)
            return;
        if (nt_data_end(&n->out) != NT_OK)
            return;
        if (nt_conn_send(p->conn, n->out.data, n->out.len) != NT_OK)
            return; /* full or closed: retried on the next pass */
        p->sent = c.last;
    }
}

/* ------------------------------------------------------------------------ */
/* Demand and pull across links (docs/NODES.md).                            */

/* The n->csrc index of graph source `src` (a demand source), or -1. */
static int32_t csrc_of_src(const fl__net *n, int32_t src)
{
    for (uint32_t i = 0; i < n->ncsrc; i++)
        if ((int32_t)n->csrc[i].src == src)
            return (int32_t)i;
    return -1;
}

/* Consumer side: sends the credits owed to p (their ACK has gone out).
 * Under mu. */
static void send_owed(fl__net *n, peer *p)
{
    for (uint32_t i = 0; i < n->ncsrc; i++) {
        if (!p->owe_n[i])
            continue;
        nt_buf_reset(&n->out);
        if (nt_put_credit(&n->out, n->csrc[i].stage, p->owe_n[i]) != NT_OK ||
            nt_conn_send(p->conn, n->out.data, n->out.len) != NT_OK)
            return; /* kept: sent after the next ACK */
        p->owe_n[i] = 0;
    }
}

/* Consumer side: the initial window of every demand source on devices,
 * right after WELCOME to device peer p.  Under mu. */
static void grant_initial(fl__net *n, peer *p)
{
    nt_buf b;
    nt_buf_init(&b, 0);
    memset(p->owe_n, 0, sizeof p->owe_n);
    for (uint32_t i = 0; i < n->ncsrc; i++) {
        nt_buf_reset(&b);
        if (nt_put_credit(&b, n->csrc[i].stage, n->csrc[i].window) == NT_OK)
            nt_conn_send(p->conn, b.data, b.len);
    }
    nt_buf_free(&b);
}

typedef struct ackctx {
    fl__net *n;
    uint64_t to;
} ackctx;

/* nt_spool_read callback: counts acknowledged demand records per source. */
static int count_ack(void *user, uint64_t seq, const uint8_t *rec, size_t len)
{
    ackctx *c = user;
    if (seq > c->to)
        return 1;
    if (len < 27)
        return 0;
    size_t k = 22 + 1 + (size_t)rec[22]; /* origin, seq, ts, stage, topic */
    if (k + 4 + NET_PREFIX > len || rec[k + 4] != FL__MSG_DATA)
        return 0;
    int32_t cs = csrc_of_src(c->n, (int32_t)get16(rec + k + 5) - 1);
    if (cs >= 0)
        c->n->csrc[cs].acked++;
    return 0;
}

/* Producer side (device node): records (from, to] of the spool to the
 * consumer are acknowledged; counts the demand ones.  Before nt_spool_ack.
 * Under mu. */
static void note_acked(fl__net *n, peer *p, uint64_t from, uint64_t to)
{
    ackctx c = {n, to};
    if (n->dev < 0 || p != n->down || !n->ncsrc || to <= from || !p->sp)
        return;
    nt_spool_read(p->sp, from + 1, count_ack, &c);
}

/* Producer side: a CREDIT frame.  The first after a (re)connect is the
 * consumer's initial window: the local credits become that window minus
 * what is really in flight (granted last time, plus the acknowledged
 * records whose credit never came); later ones add.  Under mu. */
static void on_credit(fl__net *n, uint32_t stage, uint32_t credits)
{
    for (uint32_t i = 0; i < n->ncsrc; i++) {
        linksrc *c = &n->csrc[i];
        if (c->stage != stage || !c->local)
            continue;
        int64_t delta = credits;
        if (c->initial) {
            delta = (int64_t)credits - c->granted +
                    (int64_t)(c->acked - c->credited);
            c->granted = credits;
            c->credited = c->acked;
            c->initial = 0;
        } else {
            c->credited += credits;
        }
        if (delta > INT32_MAX / 2)
            delta = INT32_MAX / 2;
        if (delta < -(INT32_MAX / 2))
            delta = -(INT32_MAX / 2);
        fl__rt_link_credit(n->rt, stage, (int32_t)delta);
    }
}

static uint64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Consumer side: PULL frames to every connected device peer for each pull
 * source whose interval has passed.  Pump thread, under mu. */
static void send_pulls(fl__net *n)
{
    uint64_t now = mono_now();
    for (uint32_t i = 0; i < n->npsrc; i++) {
        linksrc *c = &n->psrc[i];
        if (c->local || now < c->due)
            continue;
        c->due += c->period;
        if (c->due < now) /* far behind: do not burst */
            c->due = now + c->period;
        nt_buf_reset(&n->out);
        if (nt_put_pull(&n->out, c->stage) != NT_OK)
            continue;
        for (uint32_t k = 0; k < n->npeers; k++) {
            peer *p = n->peers[k];
            if (p->below && p->ready && p->conn &&
                nt_conn_send(p->conn, n->out.data, n->out.len) == NT_OK)
                p->pulls++;
        }
    }
}

/* Finds the demand and pull sources placed on devices; on a device node
 * marks those fed to another node (link credits/asks) and takes back, from
 * the credits, the demand records still unacknowledged in the spool (they
 * are in flight: resent and credited once processed). */
static void linksrc_setup(fl__net *n, double time_scale)
{
    const fl_graph *g = n->g;
    uint64_t now = mono_now();
    for (uint32_t s = 0; s < g->nsources; s++) {
        const fl__source *src = &g->sources[s];
        if (src->stage >= g->nstages ||
            g->stages[src->stage].layer != FL__LAYER_DEVICE)
            continue;
        linksrc *c;
        if (src->mode == FL__MODE_DEMAND && n->ncsrc < NET_MAX_LINKSRC)
            c = &n->csrc[n->ncsrc++];
        else if (src->mode == FL__MODE_PULL && n->npsrc < NET_MAX_LINKSRC)
            c = &n->psrc[n->npsrc++];
        else
            continue;
        memset(c, 0, sizeof *c);
        c->stage = src->stage;
        c->src = s;
        c->window = src->credits ? src->credits : NET_DEFAULT_CREDITS;
        uint64_t per = src->interval_ns ? src->interval_ns
                                         : g->stages[src->stage].every_ns;
        if (time_scale > 0)
            per = (uint64_t)((double)per / time_scale);
        c->period = per ? per : 1000000000ull;
        c->due = now + c->period;
        if (n->dev >= 0)
            c->local = src->mode == FL__MODE_DEMAND
                           ? fl__rt_link_credit(n->rt, src->stage, 0) > 0
                           : fl__rt_link_ask(n->rt, src->stage, 0) > 0;
    }
    if (n->dev < 0 || !n->down || !n->ncsrc)
        return;
    nt_spool_stats st;
    nt_spool_stats_get(n->down->sp, &st);
    if (st.next_seq > st.first_seq) {
        /* Counted as "acked" by note_acked: here, the ones in flight. */
        note_acked(n, n->down, st.first_seq - 1, st.next_seq - 1);
        for (uint32_t i = 0; i < n->ncsrc; i++) {
            linksrc *c = &n->csrc[i];
            if (c->local && c->acked)
                fl__rt_link_credit(n->rt, c->stage, -(int32_t)c->acked);
            c->acked = 0;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Receiving side (pump thread, under mu).                                  */

/* Injects the inbox's messages into the runtime, oldest first; stops at a
 * full queue (retried on the next pass). */
static void take_inbox(fl__net *n, peer *p)
{
    char err[128];
    while (p->rxh) {
        nt_frame f = {NT_DATA, p->rxh->len, p->rxh->data};
        nt_msg m;
        /* The whole frame was checked on the loop thread (on_frame):
         * start at its first message (offset 4, after the count) rather
         * than at 0, which would check every message again. */
        size_t off = p->rxoff ? p->rxoff : 4;
        nt_status st = nt_data_next(&f, &off, &m, err, sizeof err);
        if (st != NT_OK) { /* end (or checked before: cannot fail) */
            rxbuf *b = p->rxh;
            p->rxh = b->next;
            if (!p->rxh)
                p->rxt = NULL;
            p->rxoff = 0;
            free(b);
            continue;
        }
        if (m.seq <= p->in_seen || m.len < NET_PREFIX) { /* duplicate */
            p->rxoff = off;
            continue;
        }
        fl__wire w;
        w.origin = m.origin;
        w.seq = m.origin_seq;
        w.ts = (int64_t)m.ts_ns;
        w.stage = m.stage;
        w.kind = m.data[0] <= FL__MSG_ACT_FINAL ? m.data[0] : FL__MSG_DATA;
        w.src = (int32_t)get16(m.data + 1) - 1;
        w.topic = m.topic;
        w.topic_len = m.topic_len;
        w.data = m.data + NET_PREFIX;
        w.len = m.len - NET_PREFIX;
        int final = n->dev >= 0 && w.kind == FL__MSG_ACT_FINAL;
        if (final && w.seq <= n->act_seen) {
            /* Sent again by a node that crashed after forwarding it: the
             * device already has it (one actuation per message seq). */
            p->in_seen = m.seq;
            p->rxoff = off;
            continue;
        }
        ntok *nt = malloc(sizeof *nt);
        if (!nt)
            return;
        fl__tok *t = &nt->t;
        nt->csrc = w.kind == FL__MSG_DATA && p->isdev ? csrc_of_src(n, w.src)
                                                      : -1;
        atomic_init(&t->live, 1);
        t->seq = m.seq;
        t->act_seq = final ? w.seq : 0;
        t->next = NULL;
        int r = fl__rt_inject(n->rt, &w, t);
        if (r > 0) {
            free(nt);
            return;
        }
        if (p->ttail)
            p->ttail->next = t;
        else
            p->thead = t;
        p->ttail = t;
        p->in_seen = m.seq;
        if (final)
            n->act_seen = w.seq;
        p->rxoff = off;
        n->n_in++;
        fl__tok_put(t);
    }
}

/* Records that watermark file fd was written: under NT_SYNC_ALWAYS it is
 * made durable now (before the ACK that depends on it), under
 * NT_SYNC_BATCH at the next sync point (sync_point). */
static void wm_written(fl__net *n, int fd)
{
    if (n->sync == NT_SYNC_ALWAYS) {
        if (fdatasync(fd) != 0)
            nlog("cannot sync a watermark: %s", strerror(errno));
        return;
    }
    if (n->sync != NT_SYNC_BATCH)
        return;
    for (uint32_t i = 0; i < n->nwmdirty; i++)
        if (n->wmdirty[i] == fd)
            return;
    if (n->nwmdirty < NET_MAX_WMFD)
        n->wmdirty[n->nwmdirty++] = fd;
    else if (fdatasync(fd) != 0)
        nlog("cannot sync a watermark: %s", strerror(errno));
}

/* The batch sync point (NT_SYNC_BATCH, every NET_SYNC_NS and at stop):
 * the spools that took appends first, then the watermarks, so a watermark
 * on disk never covers a message whose derived records are not.  Under
 * mu. */
static void sync_point(fl__net *n)
{
    while (n->sdirty) {
        peer *p = n->sdirty;
        n->sdirty = p->snext;
        p->sdirty = 0;
        nt_status st = p->sp ? nt_spool_sync(p->sp) : NT_OK;
        if (st != NT_OK)
            nlog("cannot sync the spool to %s: %s", p->name,
                 nt_status_msg(st));
    }
    for (uint32_t i = 0; i < n->nwmdirty; i++)
        if (fdatasync(n->wmdirty[i]) != 0)
            nlog("cannot sync a watermark: %s", strerror(errno));
    n->nwmdirty = 0;
    n->sync_due = mono_now() + NET_SYNC_NS;
}

/* Edge: is the backlog toward the node below (records appended but not
 * acknowledged by it) above `bound`? */
static int down_over(fl__net *n, uint64_t bound)
{
    peer *d = n->down;
    return d && d->sp && n->dev < 0 && spool_last(d->sp) - d->acked > bound;
}

/* Edge: once the backlog toward the node below is back under half the
 * bound, the device peers whose credits were withheld get them (their
 * ACKs are out: the pump sends the credits on its next visit).  Under
 * mu. */
static void release_credits(fl__net *n)
{
    if (!n->withheld || down_over(n, n->down_bound / 2))
        return;
    n->withheld = 0;
    for (uint32_t k = 0; k < n->npeers; k++) {
        peer *p = n->peers[k];
        for (uint32_t i = 0; i < n->ncsrc; i++)
            if (p->owe_n[i]) {
                mark_active(n, p);
                break;
            }
    }
}

/* Writes the spool appends buffered in memory (edge, cloud: NET_WBUF)
 * before a watermark that may cover the messages they derive from is
 * written: then a crash never acknowledges a message whose derived
 * records are lost.  Returns 0, or -1 when a spool could not be written
 * (the watermark must then stay where it is).  Under mu. */
static int flush_appends(fl__net *n)
{
    while (n->wpend) {
        peer *p = n->wpend;
        nt_status st = p->sp ? nt_spool_flush(p->sp) : NT_OK;
        if (st != NT_OK) { /* stays listed: no watermark passes it */
            if (!n->wfail++)
                nlog("cannot write the spool to %s: %s (no more "
                     "acknowledgements)", p->name, nt_status_msg(st));
            return -1;
        }
        n->wpend = p->wnext;
        p->wpend = 0;
    }
    return 0;
}

/* Must p's ACK go out now, or may it wait for more records (until
 * p->ack_due)?  One ACK per message per device link was the largest cost
 * of an edge holding thousands of links that each send rarely (a write,
 * its TLS record and the loopback delivery, per message): with
 * n->ack_delay an ACK to a device waits for the next records of that link,
 * at most ack_delay.  Only the ACK waits: the watermark is written as
 * before (advance), so what a crash repeats is unchanged.  It goes at once
 * when forced or stopping, off the device links, when NET_ACK_RECS records
 * are unacknowledged, when credits wait for it (the device's demand source
 * would stall), and when frames go to the device anyway (the ACK shares
 * their write). */
static int ack_now(fl__net *n, peer *p, int force)
{
    if (force || !n->ack_delay || !p->isdev || n->paused || n->quit ||
        !p->ready || !p->conn)
        return 1;
    if (p->in_done - p->in_done_sent >= NET_ACK_RECS)
        return 1;
    if (p->ack_due && !p->inackq) /* taken off the queue: due */
        return 1;
    for (uint32_t i = 0; i < n->ncsrc; i++)
        if (p->owe_n[i])
            return 1;
    return p->sp && p->sent < spool_last(p->sp) &&
           p->sent < p->acked + NET_WINDOW;
}

/* Advances p's ack watermark over the finished tokens (in seq order),
 * persists it (after flush_appends) and sends the ACK (now, or when
 * ack_now lets it wait, from the pump once p->ack_due has passed).
 * `force` (at stop): the watermark is written and the ACK sent again even
 * when unchanged. */
static void advance(fl__net *n, peer *p, int force)
{
    while (p->thead &&
           atomic_load_explicit(&p->thead->live, memory_order_acquire) == 0) {
        fl__tok *t = p->thead;
        int32_t cs = ((ntok *)(void *)t)->csrc;
        p->in_done = t->seq;
        if (cs >= 0)
            p->owe_n[cs]++;
        if (t->act_seq > n->act_done)
            n->act_done = t->act_seq;
        p->thead = t->next;
        if (!p->thead)
            p->ttail = NULL;
        free(t);
    }
    if (!p->thead && !p->rxh && p->in_seen > p->in_done)
        p->in_done = p->in_seen; /* only duplicates were left */
    if (p->in_done > p->in_wm || (force && p->in_done)) {
        int wfd = p->wmfd >= 0 ? p->wmfd : n->devwm;
        if (flush_appends(n) != 0)
            return;
        if (n->actfd >= 0 && n->act_done) {
            write_u64(n->actfd, n->act_done); /* before the ack */
            wm_written(n, n->actfd);
        }
        write_u64_at(wfd, p->wmoff, p->in_done);
        wm_written(n, wfd);
        p->in_wm = p->in_done;
    }
    if (p->in_done > p->in_done_sent || (force && p->in_done)) {
        if (!ack_now(n, p, force)) {
            if (!p->ack_due)
                ackq_add(n, p, mono_now() + n->ack_delay);
        } else if (p->ready && p->conn) {
            nt_buf_reset(&n->out);
            if (nt_put_u64(&n->out, NT_ACK, p->in_done) == NT_OK &&
                nt_conn_send(p->conn, n->out.data, n->out.len) == NT_OK) {
                p->in_done_sent = p->in_done;
                ackq_del(n, p);
                p->ack_due = 0;
            }
        } else {
            p->in_done_sent = p->in_done; /* HELLO carries it on reconnect */
            /* The device reconciles these from the acknowledgement. */
            memset(p->owe_n, 0, sizeof p->owe_n);
            ackq_del(n, p);
            p->ack_due = 0;
        }
    }
    /* Credits go out after the ACK that covers them, unless the edge's
     * backlog toward the node below is over the bound. */
    if (p->isdev && p->ready && p->conn && p->in_done_sent == p->in_done) {
        if (down_over(n, n->down_bound))
            n->withheld = 1;
        else
            send_owed(n, p);
    }
}

/* Device nodes: keeps NET_SEQ_LEASE seq numbers leased on disk ahead of the
 * counter, so a crash-restart never reuses one. */
static void lease_seq(fl__net *n)
{
    _Atomic uint64_t *c;
    if (n->dev < 0 || n->seqfd < 0 || !(c = fl__rt_dev_seq(n->rt, (uint32_t)n->dev)))
        return;
    uint64_t v = atomic_load(c);
    if (v + NET_SEQ_LEASE / 4 > n->seq_limit) {
        n->seq_limit = v + NET_SEQ_LEASE;
        write_u64(n->seqfd, n->seq_limit);
        fdatasync(n->seqfd);
    }
}

static void *pump_main(void *arg)
{
    fl__net *n = arg;
    pthread_mutex_lock(&n->mu);
    while (!n->quit) {
        if (n->dev >= 0)
            (void)flush_appends(n); /* bounds what a device crash loses */
        lease_seq(n);
        release_credits(n);
        if (n->sync == NT_SYNC_BATCH && mono_now() >= n->sync_due)
            sync_point(n);
        if (!n->paused && n->npsrc)
            send_pulls(n);
        /* Only the peers with something to do; a peer stays on the list
         * while messages of it are in flight here, its inbox is not
         * empty, or it has records to send. */
        uint64_t now = mono_now(), until = now + NET_PUMP_NS;
        /* Delayed ACKs whose time has come (ack_now): visited in this
         * pass; the rest wait off the active list. */
        while (n->aqhead && n->aqhead->ack_due <= now) {
            peer *q = n->aqhead;
            ackq_del(n, q);
            mark_active(n, q);
        }
        if (n->aqhead && n->aqhead->ack_due < until)
            until = n->aqhead->ack_due;
        peer *p = n->ahead;
        n->ahead = n->atail = NULL;
        while (p) {
            peer *next = p->anext;
            p->active = 0;
            if (!n->paused)
                take_inbox(n, p);
            advance(n, p, 0);
            /* A few fresh records wait (NET_COALESCE_NS at most) for more
             * to share their frame: fewer frames, wake-ups and TLS records
             * per message on both ends. */
            uint64_t unsent = p->sp ? spool_last(p->sp) - p->sent : 0;
            if (unsent && unsent < NET_COALESCE_RECS && !n->quit &&
                now < p->unsent_since + NET_COALESCE_NS) {
                if (p->unsent_since + NET_COALESCE_NS < until)
                    until = p->unsent_since + NET_COALESCE_NS;
            } else if (p->ready && p->conn) {
                send_spool(n, p);
            }
            if (p->thead || (p->rxh && !n->paused) ||
                (p->in_done > p->in_done_sent && !p->inackq) ||
                (p->ready && p->conn && p->sp && p->sent < p->acked + NET_WINDOW &&
                 p->sent < spool_last(p->sp)))
                mark_active(n, p);
            p = next;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        now = mono_now();
        ts.tv_nsec += until > now ? (long)(until - now) : 0;
        if (ts.tv_nsec >= 1000000000l) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000l;
        }
        n->pump_idle = 1;
        pthread_cond_timedwait(&n->cv, &n->mu, &ts);
        n->pump_idle = 0;
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Link callbacks (loop thread).                                            */

static void send_hello(fl__net *n, nt_conn *c, uint8_t type, peer *p)
{
    nt_hello h;
    nt_buf b;
    memset(&h, 0, sizeof h);
    h.role = (uint8_t)(n->layer + 1);
    snprintf(h.name, sizeof h.name, "%s", n->name);
    h.flow_hash = n->flow_hash;
    h.last_seq_seen = p ? p->in_done : 0;
    nt_buf_init(&b, 0);
    if (nt_put_hello(&b, type, &h) == NT_OK)
        nt_conn_send(c, b.data, b.len);
    nt_buf_free(&b);
}

static void send_refuse(nt_conn *c, const char *why)
{
    nt_buf b;
    nt_buf_init(&b, 0);
    if (nt_put_refuse(&b, why) == NT_OK)
        nt_conn_send(c, b.data, b.len);
    nt_buf_free(&b);
}

static int on_open(void *user, nt_conn *c, const char *peer_name, int role)
{
    fl__net *n = user;
    int rc = 0;
    if (role == NT_ROLE_OPERATOR) /* the control plane's (rt_ctl.c): no HELLO */
        return fl__ctl_on_open(fl__rt_ctl(n->rt), c, peer_name);
    pthread_mutex_lock(&n->mu);
    if (n->down && c == n->down->conn) {
        if (n->tls && strcmp(peer_name, n->down->name) != 0) {
            nlog("refusing %s: expected node %s", peer_name, n->down->name);
            rc = -1;
        } else {
            send_hello(n, c, NT_HELLO, n->down);
        }
    } else {
        if (n->tls && !connects_to_me(n, peer_name)) {
            nlog("refusing %s (role %s): not a node of this flow that "
                 "connects to %s", peer_name, nt_role_name(role), n->name);
            rc = -1;
        } else {
            unbound *u = calloc(1, sizeof *u);
            if (u && pmap_put(&n->ubmap, c, u)) {
                u->c = c;
                snprintf(u->cn, sizeof u->cn, "%s", n->tls ? peer_name : "");
            } else {
                free(u);
                rc = -1;
            }
        }
    }
    pthread_mutex_unlock(&n->mu);
    return rc;
}

/* A peer's HELLO (we accepted it) or WELCOME (we connected). */
static void on_hello(fl__net *n, nt_conn *c, const nt_frame *f)
{
    nt_hello h;
    char err[160], why[256];
    peer *p = NULL;
    if (nt_hello_decode(f, &h, err, sizeof err) != NT_OK) {
        nlog("bad HELLO: %s", err);
        return;
    }
    if (h.flow_hash != n->flow_hash) {
        snprintf(why, sizeof why,
                 "node %s runs a different flow file (hash %016llx, %s runs "
                 "%016llx)", h.name, (unsigned long long)h.flow_hash, n->name,
                 (unsigned long long)n->flow_hash);
        nlog("refusing: %s", why);
        send_refuse(c, why);
        return;
    }
    if (f->type == NT_WELCOME) {
        if (!n->down || c != n->down->conn)
            return;
        p = n->down;
    } else {
        unbound *u = pmap_get(&n->ubmap, c);
        if (!u)
            return; /* HELLO twice */
        if ((u->cn[0] && strcmp(u->cn, h.name) != 0) ||
            !connects_to_me(n, h.name)) {
            snprintf(why, sizeof why, "node %s does not connect to %s",
                     h.name, n->name);
            nlog("refusing: %s", why);
            send_refuse(c, why);
            return;
        }
        pmap_del(&n->ubmap, c);
        free(u);
        p = peer_get(n, h.name, 1, 0);
        if (!p) {
            send_refuse(c, "no state for this peer");
            return;
        }
        if (p->conn && p->conn != c) /* a newer connection of the same peer */
            p->ready = 0;
        set_conn(n, p, c);
        send_hello(n, c, NT_WELCOME, p);
    }
    if (h.last_seq_seen > p->acked && p->sp) {
        note_acked(n, p, p->acked, h.last_seq_seen);
        p->acked = h.last_seq_seen;
        nt_spool_ack(p->sp, p->acked);
    }
    p->sent = p->acked; /* resend what is not acknowledged */
    p->ready = 1;
    if (f->type == NT_WELCOME)
        for (uint32_t i = 0; i < n->ncsrc; i++)
            n->csrc[i].initial = 1;
    else if (n->ncsrc && p->isdev)
        grant_initial(n, p);
    mark_active(n, p);
    wake_pump(n);
    if (!n->quiet_links || !p->below)
        nlog("link to %s up (resuming after seq %llu, %llu spooled)", p->name,
             (unsigned long long)p->sent,
             (unsigned long long)(p->sp ? spool_last(p->sp) - p->acked : 0));
}

static peer *peer_of(fl__net *n, nt_conn *c)
{
    return pmap_get(&n->byconn, c);
}

static void on_frame(void *user, nt_conn *c, const nt_frame *f)
{
    fl__net *n = user;
    char err[160];
    uint64_t v;
    peer *p;
    /* CTL, CTL_REPLY and operator connections go to rt_ctl.c first */
    if (fl__ctl_on_frame(fl__rt_ctl(n->rt), c, f))
        return;
    pthread_mutex_lock(&n->mu);
    switch (f->type) {
    case NT_HELLO:
    case NT_WELCOME:
        on_hello(n, c, f);
        break;
    case NT_DATA: {
        p = peer_of(n, c);
        if (!p || !p->ready)
            break;
        /* Checked here, on the loop thread: a bad frame closes the link. */
        size_t off = 0;
        nt_msg m;
        nt_status st;
        while ((st = nt_data_next(f, &off, &m, err, sizeof err)) == NT_OK)
            ;
        if (st != NT_AGAIN) {
            nlog("bad DATA from %s: %s", p->name, err);
            break;
        }
        rxbuf *b = malloc(sizeof *b + f->len);
        if (!b)
            break; /* not acknowledged: resent after reconnect */
        b->next = NULL;
        b->len = f->len;
        memcpy(b->data, f->payload, f->len);
        if (p->rxt)
            p->rxt->next = b;
        else
            p->rxh = b;
        p->rxt = b;
        mark_active(n, p);
        wake_pump(n);
        break;
    }
    case NT_ACK:
        p = peer_of(n, c);
        if (p && nt_u64_decode(f, &v, err, sizeof err) == NT_OK &&
            v > p->acked && v <= p->sent) {
            note_acked(n, p, p->acked, v);
            p->acked = v;
            nt_spool_ack(p->sp, v);
            mark_active(n, p);
            wake_pump(n);
        }
        break;
    case NT_CREDIT: {
        uint32_t stage, credits;
        p = peer_of(n, c);
        if (p && p == n->down && p->ready &&
            nt_credit_decode(f, &stage, &credits, err, sizeof err) == NT_OK)
            on_credit(n, stage, credits);
        break;
    }
    case NT_PULL: {
        uint32_t stage;
        p = peer_of(n, c);
        if (p && p == n->down && p->ready && !n->paused &&
            nt_pull_decode(f, &stage, err, sizeof err) == NT_OK &&
            fl__rt_link_ask(n->rt, stage, 1) > 0)
            n->asks_in++;
        break;
    }
    default: /* BYE, REFUSE: the link closes */
        break;
    }
    pthread_mutex_unlock(&n->mu);
}

static void on_close(void *user, nt_conn *c, const char *reason)
{
    fl__net *n = user;
    fl__ctl_on_close(fl__rt_ctl(n->rt), c); /* before the handle dies */
    pthread_mutex_lock(&n->mu);
    unbound *u = pmap_get(&n->ubmap, c);
    if (u) {
        pmap_del(&n->ubmap, c);
        free(u);
    }
    peer *p = peer_of(n, c);
    if (p) {
        if (p->ready && (!n->quiet_links || !p->below))
            nlog("link to %s down: %s", p->name, reason);
        p->ready = 0;
        if (p->below)
            set_conn(n, p, NULL); /* accepted handles die after on_close */
    }
    pthread_mutex_unlock(&n->mu);
}

/* ------------------------------------------------------------------------ */
/* Life cycle.                                                              */

/* The sync policy of spools and watermarks: the run options' (isoflow
 * node --spool-sync), else ISOFLOW_SPOOL_SYNC = none, batch (default) or
 * always (docs/NODES.md "Durability"). */
static uint8_t sync_policy(const fl_run_opts *o)
{
    if (o->spool_sync == FL_SYNC_NONE)
        return NT_SYNC_NONE;
    if (o->spool_sync == FL_SYNC_BATCH)
        return NT_SYNC_BATCH;
    if (o->spool_sync == FL_SYNC_ALWAYS)
        return NT_SYNC_ALWAYS;
    const char *e = getenv("ISOFLOW_SPOOL_SYNC");
    if (e && strcmp(e, "always") == 0)
        return NT_SYNC_ALWAYS;
    if (e && strcmp(e, "none") == 0)
        return NT_SYNC_NONE;
    if (e && *e && strcmp(e, "batch") != 0)
        nlog("ISOFLOW_SPOOL_SYNC=%s: not none, batch or always; using batch",
             e);
    return NT_SYNC_BATCH;
}

fl_status fl__net_new(fl_runtime *rt, const fl_graph *g, const fl_run_opts *o,
                      fl__net **out, char *err, size_t errlen)
{
    fl__net *n = calloc(1, sizeof *n);
    char path[NET_PATH + 64];
    *out = NULL;
    if (!n) {
        snprintf(err, errlen, "out of memory");
        return FL_NOMEM;
    }
    n->rt = rt;
    n->g = g;
    n->dev = fl__rt_node_device(rt);
    n->seqfd = -1;
    n->actfd = -1;
    n->devwm = -1;
    n->sync = sync_policy(o);
    n->spool_max = o->spool_max_bytes;
    n->spool_full = o->spool_full ? NT_FULL_DROP_OLDEST : NT_FULL_REJECT;
    const char *bl = getenv("ISOFLOW_NET_BACKLOG");
    n->down_bound = bl && *bl ? strtoull(bl, NULL, 10) : 0;
    if (!n->down_bound)
        n->down_bound = NET_DOWN_BOUND;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cv, NULL);
    nt_buf_init(&n->enc, 0);
    nt_buf_init(&n->out, 0);
    n->cb.on_open = on_open;
    n->cb.on_frame = on_frame;
    n->cb.on_close = on_close;
    snprintf(n->name, sizeof n->name, "%s", o->node);
    n->rec = malloc(NT_MAX_MSG + 256);
    int32_t conn = -1;
    if (n->dev >= 0) {
        n->layer = FL__LAYER_DEVICE;
        for (uint32_t k = 0; k < g->ngroups; k++)
            if (g->groups[k].layer == FL__LAYER_DEVICE &&
                (uint32_t)n->dev >= g->groups[k].first_device &&
                (uint32_t)n->dev - g->groups[k].first_device < g->groups[k].count)
                conn = g->groups[k].connect_idx;
    } else {
        for (uint32_t i = 0; i < g->nnodes; i++)
            if (strcmp(g->nodes[i].name, n->name) == 0) {
                n->layer = g->nodes[i].layer;
                n->listen = g->nodes[i].listen;
                conn = g->nodes[i].connect_idx;
            }
    }
    n->flow_hash = file_hash(g->file);
    n->quiet_links = g->ndevices > 64;
    /* ACKs to devices wait for more records (ack_now) on a node with many
     * device links, where one per message cost the most; the environment
     * sets the delay (0: at once) for any node. */
    const char *ad = getenv("ISOFLOW_NET_ACK_DELAY_MS");
    uint64_t ack_ms = n->quiet_links ? NET_ACK_DELAY_MS : 0;
    if (ad && *ad)
        ack_ms = strtoull(ad, NULL, 10);
    if (ack_ms > 60000)
        ack_ms = 60000;
    n->ack_delay = ack_ms * 1000000ull;
    snprintf(n->dir, sizeof n->dir, "%s/%s",
             o->state_dir ? o->state_dir : "state", n->name);
    if (!n->rec || pl_mkdirs(n->dir) != 0) {
        snprintf(err, errlen, "cannot create state directory %s: %s", n->dir,
                 strerror(errno));
        goto fail;
    }
    if (n->dev < 0 && n->listen) {
        snprintf(path, sizeof path, "%s/in-devices.seq", n->dir);
        n->devwm = open(path, O_RDWR | O_CREAT, 0600);
        if (n->devwm < 0) {
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
            goto fail;
        }
    }
    if (!o->insecure) {
        char ca[NET_PATH], crt[NET_PATH], key[NET_PATH];
        const char *d = o->certs ? o->certs : "certs";
        snprintf(ca, sizeof ca, "%s/ca.crt", d);
        snprintf(crt, sizeof crt, "%s/%s.crt", d, n->name);
        snprintf(key, sizeof key, "%s/%s.key", d, n->name);
        char e2[256];
        if (nt_tls_new(ca, crt, key, &n->tls, e2, sizeof e2) != NT_OK) {
            snprintf(err, errlen, "TLS for node %s: %s", n->name, e2);
            goto fail;
        }
        /* operators (isoflow deploy, versions) resume their sessions */
        snprintf(path, sizeof path, "%s/operator-tickets.key", n->dir);
        if (n->listen &&
            nt_tls_operator_tickets(n->tls, path, e2, sizeof e2) != NT_OK)
            fprintf(stderr, "isoflow: node %s: operator sessions will not "
                    "be resumed: %s\n", n->name, e2);
    }
    if (conn >= 0) {
        pthread_mutex_lock(&n->mu);
        n->down = peer_get(n, g->nodes[conn].name, 0, 1);
        pthread_mutex_unlock(&n->mu);
        if (!n->down) {
            snprintf(err, errlen, "cannot open the state of link %s -> %s "
                     "under %s", n->name, g->nodes[conn].name, n->dir);
            goto fail;
        }
    }
    if (n->dev >= 0) {
        snprintf(path, sizeof path, "%s/seq", n->dir);
        n->seqfd = open(path, O_RDWR | O_CREAT, 0600);
        if (n->seqfd < 0) {
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
            goto fail;
        }
        n->seq_limit = read_u64(n->seqfd);
        atomic_store(fl__rt_dev_seq(rt, (uint32_t)n->dev), n->seq_limit);
        snprintf(path, sizeof path, "%s/act.seq", n->dir);
        n->actfd = open(path, O_RDWR | O_CREAT, 0600);
        if (n->actfd < 0) {
            snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
            goto fail;
        }
        n->act_seen = n->act_done = read_u64(n->actfd);
    }
    pthread_mutex_lock(&n->mu);
    linksrc_setup(n, o->time_scale);
    pthread_mutex_unlock(&n->mu);
    *out = n;
    return FL_OK;
fail:
    fl__net_free(n);
    return FL_IO;
}

fl_status fl__net_start(fl__net *n, char *err, size_t errlen)
{
    char e2[256];
    const fl_graph *g = n->g;
    if (nt_loop_new(&n->loop, e2, sizeof e2) != NT_OK) {
        if (err)
            snprintf(err, errlen, "%s", e2);
        nlog("%s", e2);
        return FL_IO;
    }
    if (n->listen) {
        unsigned roles = 0;
        for (uint32_t i = 0; i < g->nnodes; i++)
            if (g->nodes[i].connect_idx >= 0 &&
                strcmp(g->nodes[g->nodes[i].connect_idx].name, n->name) == 0)
                roles |= 1u << (g->nodes[i].layer + 1);
        for (uint32_t k = 0; k < g->ngroups; k++)
            if (g->groups[k].connect_idx >= 0 &&
                strcmp(g->nodes[g->groups[k].connect_idx].name, n->name) == 0)
                roles |= 1u << NT_ROLE_DEVICE;
        if (fl__rt_ctl(n->rt)) /* deploys (rt_ctl.c) */
            roles |= 1u << NT_ROLE_OPERATOR;
        if (nt_listen(n->loop, n->tls, n->listen, roles, &n->cb, n, &n->ls,
                      e2, sizeof e2) != NT_OK) {
            nlog("cannot listen on %s: %s", n->listen, e2);
            if (err)
                snprintf(err, errlen, "cannot listen on %s: %s", n->listen, e2);
            return FL_IO;
        }
    }
    if (n->down) {
        const fl__node *d = NULL;
        for (uint32_t i = 0; i < g->nnodes; i++)
            if (strcmp(g->nodes[i].name, n->down->name) == 0)
                d = &g->nodes[i];
        nt_conn *c = NULL;
        pthread_mutex_lock(&n->mu); /* on_open compares with down->conn */
        nt_status st = nt_connect(n->loop, n->tls, d->listen, d->layer + 1,
                                  &n->cb, n, &c, e2, sizeof e2);
        set_conn(n, n->down, c);
        pthread_mutex_unlock(&n->mu);
        if (st != NT_OK) {
            nlog("cannot connect to %s: %s", d->listen, e2);
            return FL_IO;
        }
    }
    if (pthread_create(&n->th, NULL, pump_main, n) != 0)
        return FL_NOMEM;
    n->running = 1;
    return FL_OK;
}

void fl__net_pause(fl__net *n)
{
    pthread_mutex_lock(&n->mu);
    n->paused = 1;
    pthread_mutex_unlock(&n->mu);
}

/* The demand and pull figures at stop (the node tests read them). */
static void log_link_figures(fl__net *n)
{
    for (uint32_t i = 0; i < n->ncsrc; i++)
        if (n->csrc[i].local)
            nlog("demand %s: at most %u in flight over the link (window %lld)",
                 n->g->stages[n->csrc[i].stage].name,
                 (unsigned)fl__rt_inflight_max(n->rt, n->csrc[i].stage),
                 (long long)n->csrc[i].granted);
    for (uint32_t i = 0; i < n->npsrc; i++)
        if (n->psrc[i].local)
            nlog("pull %s: %llu asks taken", n->g->stages[n->psrc[i].stage].name,
                 (unsigned long long)n->asks_in);
    if (n->dev < 0 && n->down && n->ncsrc)
        nlog("backlog to %s: at most %llu records (credits withheld above "
             "%llu)", n->down->name, (unsigned long long)n->down_max,
             (unsigned long long)n->down_bound);
    if (n->npsrc && n->dev < 0)
        for (uint32_t k = 0; k < n->npeers; k++)
            if (n->peers[k]->below)
                nlog("pull: %llu asks sent to %s",
                     (unsigned long long)n->peers[k]->pulls, n->peers[k]->name);
    for (uint32_t k = 0; k < n->npeers; k++) {
        nt_spool_stats st;
        if (!n->peers[k]->sp)
            continue;
        nt_spool_stats_get(n->peers[k]->sp, &st);
        if (st.dropped) /* --spool-full drop-oldest made room */
            nlog("spool to %s was full: %llu oldest records dropped",
                 n->peers[k]->name, (unsigned long long)st.dropped);
    }
}

void fl__net_stop(fl__net *n)
{
    if (!n || !n->running)
        return;
    /* Let the pump send what the drain spooled and the last ACKs (bounded:
     * at most 1 s while peers are connected and behind). */
    for (int i = 0; i < 100; i++) {
        int behind = 0;
        struct timespec ts = {0, 10000000};
        pthread_mutex_lock(&n->mu);
        for (uint32_t k = 0; k < n->npeers; k++) {
            peer *p = n->peers[k];
            advance(n, p, 0);
            if (p->ready && p->sp && spool_last(p->sp) > p->acked)
                behind = 1;
        }
        pthread_mutex_unlock(&n->mu);
        if (!behind)
            break;
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&n->mu);
    n->quit = 1;
    pthread_cond_signal(&n->cv);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->th, NULL);
    n->running = 0;
    nt_buf bye;
    nt_buf_init(&bye, 0);
    nt_put_bye(&bye);
    pthread_mutex_lock(&n->mu);
    for (uint32_t k = 0; k < n->npeers; k++) {
        peer *p = n->peers[k];
        advance(n, p, 1);
        if (p->sp)
            nt_spool_sync(p->sp);
        if (p->ready && p->conn)
            nt_conn_send(p->conn, bye.data, bye.len);
    }
    sync_point(n); /* the watermarks (the spools are synced above) */
    if (n->dev >= 0 && n->seqfd >= 0) {
        write_u64(n->seqfd, atomic_load(fl__rt_dev_seq(n->rt, (uint32_t)n->dev)));
        fdatasync(n->seqfd);
    }
    log_link_figures(n);
    pthread_mutex_unlock(&n->mu);
    nt_buf_free(&bye);
    struct timespec ts = {0, 50000000}; /* let the BYEs go out */
    nanosleep(&ts, NULL);
    if (n->loop) {
        nt_loop_free(n->loop);
        n->loop = NULL;
    }
}

void fl__net_free(fl__net *n)
{
    if (!n)
        return;
    fl__net_stop(n);
    if (n->loop)
        nt_loop_free(n->loop);
    for (uint32_t i = 0; i < n->npeers; i++) {
        peer *p = n->peers[i];
        while (p->rxh) {
            rxbuf *b = p->rxh;
            p->rxh = b->next;
            free(b);
        }
        while (p->thead) { /* messages still alive are freed by the runtime */
            fl__tok *t = p->thead;
            p->thead = t->next;
            free(t);
        }
        if (p->sp)
            nt_spool_close(p->sp);
        if (p->wmfd >= 0)
            close(p->wmfd);
        free(p);
    }
    free(n->peers);
    free(n->byname);
    free(n->byconn.e);
    for (uint32_t i = 0; i < n->ubmap.cap; i++)
        if (n->ubmap.e[i].k)
            free(n->ubmap.e[i].v);
    free(n->ubmap.e);
    free(n->rec);
    nt_buf_free(&n->enc);
    nt_buf_free(&n->out);
    if (n->tls)
        nt_tls_free(n->tls);
    if (n->seqfd >= 0)
        close(n->seqfd);
    if (n->actfd >= 0)
        close(n->actfd);
    if (n->devwm >= 0)
        close(n->devwm);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->cv);
    free(n);
}

void fl__net_counts(fl__net *n, uint32_t *links_up, uint64_t *msgs_in,
                    uint64_t *msgs_out, uint64_t *spooled)
{
    uint32_t up = 0;
    uint64_t sp = 0;
    pthread_mutex_lock(&n->mu);
    for (uint32_t i = 0; i < n->npeers; i++) {
        nt_spool_stats st;
        up += n->peers[i]->ready ? 1 : 0;
        if (!n->peers[i]->sp)
            continue;
        nt_spool_stats_get(n->peers[i]->sp, &st);
        sp += st.records;
    }
    *links_up = up;
    *msgs_in = n->n_in;
    *msgs_out = n->n_out;
    *spooled = sp;
    pthread_mutex_unlock(&n->mu);
}

/* ------------------------------------------------------------------------ */
/* For the control plane (rt_ctl.c; see rt_int.h).                          */

int fl__net_ctl_peer(fl__net *n, nt_conn *c, char *name, size_t cap,
                     int *role)
{
    int rc = 0;
    pthread_mutex_lock(&n->mu);
    if (n->down && n->down->conn == c) {
        rc = n->down->ready ? 1 : 0;
        snprintf(name, cap, "%s", n->down->name);
        *role = 0;
        for (uint32_t i = 0; i < n->g->nnodes; i++)
            if (strcmp(n->g->nodes[i].name, n->down->name) == 0)
                *role = n->g->nodes[i].layer + 1;
    } else {
        peer *p = peer_of(n, c);
        unbound *u = p ? NULL : pmap_get(&n->ubmap, c);
        if (p) {
            snprintf(name, cap, "%s", p->name);
            if (p->isdev) {
                *role = NT_ROLE_DEVICE;
            } else {
                *role = 0;
                for (uint32_t i = 0; i < n->g->nnodes; i++)
                    if (strcmp(n->g->nodes[i].name, p->name) == 0)
                        *role = n->g->nodes[i].layer + 1;
            }
        } else if (u) { /* no HELLO yet: the certificate's name */
            snprintf(name, cap, "%s", u->cn);
            *role = device_of(n, u->cn) >= 0 ? NT_ROLE_DEVICE : 0;
            for (uint32_t i = 0; !*role && i < n->g->nnodes; i++)
                if (strcmp(n->g->nodes[i].name, u->cn) == 0)
                    *role = n->g->nodes[i].layer + 1;
        }
    }
    pthread_mutex_unlock(&n->mu);
    return rc;
}

int fl__net_ctl_send_peer(fl__net *n, const char *name, const uint8_t *data,
                          size_t len, const uint8_t *data2, size_t len2,
                          nt_conn **used)
{
    int rc;
    pthread_mutex_lock(&n->mu);
    peer *p = peer_find(n, name);
    if (!connects_to_me(n, name) || (p && !p->below))
        rc = -1;
    else if (!p || !p->ready || !p->conn)
        rc = -2;
    else if (nt_conn_send2(p->conn, data, len, data2, len2) != NT_OK)
        rc = -3;
    else {
        rc = 0;
        *used = p->conn;
    }
    pthread_mutex_unlock(&n->mu);
    return rc;
}

int fl__net_ctl_send_down(fl__net *n, nt_conn *c, const uint8_t *data,
                          size_t len)
{
    int rc = -1;
    pthread_mutex_lock(&n->mu);
    if (n->down && n->down->conn == c && n->down->ready &&
        nt_conn_send(c, data, len) == NT_OK)
        rc = 0;
    pthread_mutex_unlock(&n->mu);
    return rc;
}
