/*
 * link.c - the links between nodes: one libuv event loop per nt_loop on its
 * own thread, listeners and outgoing connections (reconnecting with
 * exponential backoff and jitter), TLS 1.3 through OpenSSL memory BIOs,
 * peer identity and role checks (the refusal matrix), frame reassembly,
 * heartbeats and bounded, thread-safe send queues.
 *
 * Threads: every libuv handle, SSL object and callback lives on the loop
 * thread.  Other threads talk to it through the loop's call queue
 * (nt_loop_call, uv_async_t) and through each connection's send queue
 * (mutex-protected; the loop drains "dirty" connections when woken).
 * Lock order: a connection's mutex before the loop's.
 *
 * What runs in each phase of a loop iteration (libuv's order): timers (the
 * sweep: handshake and heartbeat deadlines, PINGs, lingering closes; the
 * backoff timers of outgoing connections), then I/O callbacks (accept,
 * connect, read: TLS, frame reassembly, on_open/on_frame/on_close; write
 * completions), then the wake-up (posted calls in order, then the send
 * queues of dirty connections), then close callbacks (freeing).
 *
 * Contract details net.h leaves open (decided here):
 *  - on_close runs for an accepted connection only after on_open accepted
 *    it, and for an outgoing one after every attempt that ends (failed
 *    connect, TLS failure, refusal, loss), never after nt_conn_close.
 *  - nt_conn_close called off the loop thread waits until the loop has
 *    taken the close: afterwards no callback runs for that connection (do
 *    not call it while holding a lock your callbacks take).
 *  - PING and PONG frames are consumed here (any received byte feeds the
 *    heartbeat).  REFUSE and BYE are passed to on_frame, then the link
 *    closes (REFUSE is logged).
 *  - nt_loop_free calls on_close("event loop stopped") for open
 *    connections and frees every handle, outgoing ones included.
 *  - Host names are resolved once, by nt_connect / nt_listen.
 */
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>

#include <openssl/err.h>
#include <uv.h>

#include "net_int.h"
#include "platform.h"

#define LK_BUF 65536u              /* shared read / decrypt buffers */
#define LK_WARM (1u << 20)         /* loop thread's heap faulted in at start */
#define LK_KEEP 4096u              /* per-connection buffers kept when idle */
#define LK_LINGER_MS 2000u         /* graceful close: wait for the peer's FIN */
#define LK_BACKLOG 1024
#define LK_ADDR 64
#define LK_DRAIN 4096              /* dirty connections drained per wake-up */
#define LK_FD_RESERVE 256          /* descriptors a listener leaves free (spool
                                      segments, state files, outgoing links) */
#define LK_BATCH_CONNS 256u        /* connections from which the loop's polls */
#define LK_BATCH_NS 1000000ull     /* are at least this far apart (pace_cb) */
#ifdef IP_BIND_ADDRESS_NO_PORT
#define LK_BIND_NO_PORT IP_BIND_ADDRESS_NO_PORT
#else
#define LK_BIND_NO_PORT 24         /* Linux <linux/in.h> */
#endif

/* ------------------------------------------------------------------------ */
/* Logging. */

static uv_once_t log_once = UV_ONCE_INIT;
static uv_mutex_t log_mu;
static nt__log_fn log_fn;
static void *log_user;

static void log_init(void)
{
    if (uv_mutex_init(&log_mu) != 0)
        abort(); /* cannot happen on POSIX without resource exhaustion */
}

void nt__set_log(nt__log_fn fn, void *user)
{
    uv_once(&log_once, log_init);
    uv_mutex_lock(&log_mu);
    log_fn = fn;
    log_user = user;
    uv_mutex_unlock(&log_mu);
}

void nt__log(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    uv_once(&log_once, log_init);
    uv_mutex_lock(&log_mu);
    if (log_fn)
        log_fn(log_user, line);
    else
        fprintf(stderr, "[net] %s\n", line);
    uv_mutex_unlock(&log_mu);
}

/* ------------------------------------------------------------------------ */
/* Types. */

typedef struct lk_call {
    void (*fn)(void *);
    void *arg;
    struct lk_call *next;
} lk_call;

/* A growable byte buffer. */
typedef struct lk_bytes {
    uint8_t *p;
    size_t len, cap;
} lk_bytes;

enum {
    ST_WAIT = 0,   /* outgoing, no socket: backoff timer running */
    ST_CONNECTING, /* outgoing TCP connect in progress */
    ST_HANDSHAKE,  /* TLS handshake in progress */
    ST_OPEN,       /* authenticated, frames flow */
    ST_CLOSING,    /* socket shutting down / closing */
    ST_FREEING     /* no socket; closing the timer, then freed */
};

struct nt_loop {
    uv_loop_t uv;
    uv_thread_t thread;
    uv_async_t wake;        /* calls and dirty connections */
    uv_timer_t sweep;       /* heartbeats and deadlines */
    uv_prepare_t pace;      /* spaces polls when many connections (pace_cb) */
    uv_check_t polled_chk;  /* notes when the poll returned */
    uv_mutex_t mu;          /* guards calls, dirty, stopping */
    uv_cond_t cv;           /* signalled when a synchronous call is done */
    lk_call *calls, *calls_tail;
    nt_conn *dirty;         /* connections with queued bytes */
    int stopping;           /* nt_loop_free asked; no calls accepted */
    /* loop thread only: */
    int closing_all;
    nt_conn *conns;         /* every connection, doubly linked */
    uint32_t nconns;        /* how many */
    uint64_t polled;        /* uv_hrtime when the last poll returned */
    nt_listener *listeners;
    nt__link_tuning tune;
    uint64_t rng;
    uint64_t nonce;
    nt_buf fb;              /* scratch for PING/REFUSE frames */
    uint8_t rbuf[LK_BUF];   /* socket reads (consumed within read_cb) */
    uint8_t pbuf[LK_BUF];   /* decrypted bytes (consumed within read_cb) */
};

struct nt_listener {
    nt_loop *l;
    uv_tcp_t tcp;
    uv_tcp_t spare;                /* to refuse a connection when out of
                                      memory */
    int spare_busy, closed;
    nt_tls *tls;
    unsigned allowed;
    nt_callbacks cb;
    void *user;
    int port;
    uint64_t fail_logged;          /* uv_now of the last accept-failure log */
    uint64_t fail_quiet;           /* failures not logged since */
    uint64_t fd_limit;             /* RLIMIT_NOFILE at listen time (0: none) */
    nt_listener *next;
};

struct nt_conn {
    nt_loop *l;
    /* What the sweep reads of every connection twice a second, together
     * (with 10,000 links the sweep's cache misses were 1-2 % of an
     * edge's CPU): */
    int state;
    uint64_t started, last_rx, last_tx, closing_at; /* uv_now ms */
    nt_conn *prev, *next;          /* the loop's list */
    int outgoing;
    nt_callbacks cb;
    void *user;
    nt_tls *tls;
    unsigned allowed;              /* accepted: allowed role bits */
    int expect_role;               /* outgoing: the role wanted */
    struct sockaddr_storage sa;    /* outgoing: the target */
    struct sockaddr_storage local; /* outgoing: bind address (has_local) */
    int has_local;
    uv_tcp_t tcp;
    uv_timer_t timer;              /* outgoing: backoff */
    uv_connect_t creq;
    uv_shutdown_t sreq;
    int tcp_live, timer_live, shutting;
    int opened;                    /* on_open accepted this attempt */
    int user_closed;               /* nt_conn_close: no more callbacks */
    int got_frame;                 /* a frame arrived on this attempt */
    int bios_fresh;                /* the handshake's BIO buffers dropped */
    int failing;                   /* in a streak of failed attempts */
    uint32_t attempts;             /* attempts since the link last worked
                                      (drives the backoff) */
    uint32_t fails;                /* failed attempts in this streak */
    SSL *ssl;
    char peer[NT_MAX_NAME + 1];    /* CN once known */
    char addr[LK_ADDR];            /* "ip:port" of the peer */
    char target[LK_ADDR + 8];      /* outgoing: the address as given */
    int role;
    lk_bytes rx;                   /* a partial frame */
    lk_bytes q2;                   /* loop: bytes taken from q to send */
    /* shared with senders, under mu: */
    uv_mutex_t mu;
    lk_bytes q;                    /* frames queued by nt_conn_send */
    size_t queued;                 /* q + bytes of unfinished writes */
    size_t qmax;
    int up;                        /* nt_conn_send accepts */
    int dirty;                     /* on the loop's dirty list */
    nt_conn *dirty_next;
};

/* One uv_write: the bytes follow the struct.  `plain` bytes of the send
 * accounting are released when it completes. */
typedef struct lk_write {
    uv_write_t req;
    nt_conn *c;
    size_t plain;
    uint8_t data[];
} lk_write;

static void conn_drop(nt_conn *c, const char *reason, int graceful);
static void conn_finish(nt_conn *c);
static void start_attempt(nt_conn *c);

/* ------------------------------------------------------------------------ */
/* Small helpers. */

static int on_loop_thread(nt_loop *l)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &l->thread);
}

static int bytes_reserve(lk_bytes *b, size_t extra)
{
    size_t cap;
    uint8_t *p;
    if (b->cap - b->len >= extra)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    p = realloc(b->p, cap);
    if (p == NULL)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* Frees a buffer's memory when it is empty and larger than LK_KEEP, so an
 * idle connection holds little. */
static void bytes_trim(lk_bytes *b)
{
    if (b->len == 0 && b->cap > LK_KEEP) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}

static void bytes_free(lk_bytes *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static void sockaddr_text(const struct sockaddr *sa, char *out, size_t cap)
{
    char ip[48] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        uv_ip4_name(a, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(out, cap, "%s:%d", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(a, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        snprintf(out, cap, "[%s]:%d", ip, port);
    } else {
        snprintf(out, cap, "?");
    }
}

/*
 * Resolves "host:port" ("[v6]:port"; host "" or "*" = any address when
 * passive) into *sa.  Returns NT_OK or NT_EARG with the reason in err.
 */
static nt_status resolve(const char *addr, int passive,
                         struct sockaddr_storage *sa, char *err,
                         size_t errlen)
{
    char host[256];
    const char *colon, *port, *h = host;
    size_t hl;
    struct addrinfo hints, *res = NULL, *ai;
    int rc;

    if (addr == NULL || (colon = strrchr(addr, ':')) == NULL ||
        colon[1] == '\0') {
        nt__errf(err, errlen, "address '%s' is not host:port",
               addr ? addr : "(null)");
        return NT_EARG;
    }
    port = colon + 1;
    hl = (size_t)(colon - addr);
    if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
        addr++;
        hl -= 2;
    }
    if (hl >= sizeof host) {
        nt__errf(err, errlen, "host name too long in '%s'", addr);
        return NT_EARG;
    }
    memcpy(host, addr, hl);
    host[hl] = '\0';
    if (hl == 0 || strcmp(host, "*") == 0)
        h = passive ? NULL : "127.0.0.1";
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    rc = getaddrinfo(h, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        nt__errf(err, errlen, "cannot resolve '%s': %s", host,
               rc ? gai_strerror(rc) : "no address");
        if (res)
            freeaddrinfo(res);
        return NT_EARG;
    }
    /* Prefer IPv4 ("localhost" gives ::1 first on some systems, while the
     * peer may use 127.0.0.1). */
    for (ai = res; ai; ai = ai->ai_next)
        if (ai->ai_family == AF_INET)
            break;
    if (ai == NULL)
        ai = res;
    memset(sa, 0, sizeof *sa);
    memcpy(sa, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(res);
    return NT_OK;
}

/* "edge-1 (127.0.0.1:5555)" or "127.0.0.1:5555" when the name is unknown. */
static const char *who(const nt_conn *c, char *buf, size_t cap)
{
    if (c->peer[0] && strcmp(c->peer, c->addr) != 0)
        snprintf(buf, cap, "%s (%s)", c->peer, c->addr);
    else
        snprintf(buf, cap, "%s", c->addr);
    return buf;
}

static uint64_t rng_next(nt_loop *l)
{
    uint64_t x = l->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    l->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* The delay before attempt number `attempts` (1 = after the first
 * failure): min doubling to max, then +-20% jitter. */
static uint64_t backoff_ms(nt_loop *l, uint32_t attempts)
{
    uint64_t d = l->tune.backoff_min_ms;
    uint32_t i;
    double j;
    for (i = 1; i < attempts && d < l->tune.backoff_max_ms; i++)
        d *= 2;
    if (d > l->tune.backoff_max_ms)
        d = l->tune.backoff_max_ms;
    j = 0.8 + 0.4 * ((double)(rng_next(l) >> 11) / 9007199254740992.0);
    return (uint64_t)((double)d * j);
}

/* ------------------------------------------------------------------------ */
/* Output: everything that goes on the wire passes through out_raw. */

static void write_cb(uv_write_t *req, int status)
{
    lk_write *w = (lk_write *)req;
    nt_conn *c = w->c;
    if (w->plain) {
        uv_mutex_lock(&c->mu);
        c->queued -= w->plain;
        uv_mutex_unlock(&c->mu);
    }
    free(w);
    if (status < 0 && status != UV_ECANCELED &&
        (c->state == ST_HANDSHAKE || c->state == ST_OPEN)) {
        char why[128];
        snprintf(why, sizeof why, "write failed: %s", uv_strerror(status));
        conn_drop(c, why, 0);
    }
}

static void release_plain(nt_conn *c, size_t plain)
{
    if (plain) {
        uv_mutex_lock(&c->mu);
        c->queued -= plain;
        uv_mutex_unlock(&c->mu);
    }
}

/*
 * Writes n bytes to the socket: as much as the kernel takes now
 * (uv_try_write), the rest copied into a queued uv_write.  `plain` bytes of
 * send accounting are released once the bytes are written.
 */
static void out_raw(nt_conn *c, const uint8_t *p, size_t n, size_t plain)
{
    lk_write *w;
    uv_buf_t b;
    int r;

    if (!c->tcp_live || c->shutting || c->state >= ST_CLOSING) {
        release_plain(c, plain);
        return;
    }
    c->last_tx = uv_now(&c->l->uv);
    b = uv_buf_init((char *)p, (unsigned)n);
    r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (r < 0 && r != UV_EAGAIN) {
        char why[128];
        release_plain(c, plain);
        snprintf(why, sizeof why, "write failed: %s", uv_strerror(r));
        conn_drop(c, why, 0);
        return;
    }
    if (r > 0) {
        p += r;
        n -= (size_t)r;
    }
    if (n == 0) {
        release_plain(c, plain);
        return;
    }
    w = malloc(sizeof *w + n);
    if (w == NULL) {
        release_plain(c, plain);
        conn_drop(c, "out of memory", 0);
        return;
    }
    w->c = c;
    w->plain = plain;
    memcpy(w->data, p, n);
    b = uv_buf_init((char *)w->data, (unsigned)n);
    r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
    if (r < 0) {
        char why[128];
        free(w);
        release_plain(c, plain);
        snprintf(why, sizeof why, "write failed: %s", uv_strerror(r));
        conn_drop(c, why, 0);
    }
}

/* Sends what OpenSSL has written into the out-BIO. */
static void flush_tls(nt_conn *c, size_t plain)
{
    BIO *wb;
    char *p = NULL;
    long n;
    if (c->ssl == NULL) {
        release_plain(c, plain);
        return;
    }
    wb = SSL_get_wbio(c->ssl);
    n = BIO_get_mem_data(wb, &p);
    if (n > 0) {
        out_raw(c, (const uint8_t *)p, (size_t)n, plain);
        (void)BIO_reset(wb);
    } else {
        release_plain(c, plain);
    }
}

/* Sends whole frames on an open connection (encrypting them under TLS). */
static void send_frames(nt_conn *c, const uint8_t *p, size_t n, size_t plain)
{
    int r;
    if (c->state != ST_OPEN && c->state != ST_HANDSHAKE) {
        release_plain(c, plain);
        return;
    }
    if (c->tls == NULL) {
        out_raw(c, p, n, plain);
        return;
    }
    while (n > 0) {
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
        ERR_clear_error();
        r = SSL_write(c->ssl, p, chunk);
        if (r <= 0) {
            char why[200];
            release_plain(c, plain);
            nt__tls_failure(c->ssl, r, why, sizeof why);
            conn_drop(c, why, 0);
            return;
        }
        p += r;
        n -= (size_t)r;
    }
    flush_tls(c, plain);
}

/* Drains a connection's send queue (loop thread).  Invariant: c->dirty is
 * 1 exactly while c is on the loop's dirty list; only the caller that took
 * it off the list (off_list) clears the flag. */
static void drain_queue(nt_conn *c, int off_list)
{
    lk_bytes t;
    uv_mutex_lock(&c->mu);
    if (off_list)
        c->dirty = 0;
    t = c->q;
    c->q = c->q2;
    c->q2 = t;
    c->q.len = 0;
    uv_mutex_unlock(&c->mu);
    if (c->q2.len)
        send_frames(c, c->q2.p, c->q2.len, c->q2.len);
    c->q2.len = 0;
    bytes_trim(&c->q2);
}

/* ------------------------------------------------------------------------ */
/* Closing. */

/* Unlinks and frees a connection whose handles are all closed. */
static void conn_free(nt_conn *c)
{
    nt_loop *l = c->l;
    uv_mutex_lock(&c->mu);
    c->up = 0;
    if (c->dirty) {
        nt_conn **pp;
        uv_mutex_lock(&l->mu);
        for (pp = &l->dirty; *pp; pp = &(*pp)->dirty_next)
            if (*pp == c) {
                *pp = c->dirty_next;
                break;
            }
        uv_mutex_unlock(&l->mu);
        c->dirty = 0;
    }
    uv_mutex_unlock(&c->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    l->nconns--;
    if (c->next)
        c->next->prev = c->prev;
    SSL_free(c->ssl);
    bytes_free(&c->rx);
    bytes_free(&c->q);
    bytes_free(&c->q2);
    uv_mutex_destroy(&c->mu);
    free(c);
}

static void timer_closed(uv_handle_t *h)
{
    nt_conn *c = h->data;
    c->timer_live = 0;
    conn_finish(c);
}

static void backoff_fired(uv_timer_t *t)
{
    nt_conn *c = t->data;
    if (c->state == ST_WAIT && !c->user_closed && !c->l->closing_all)
        start_attempt(c);
}

/*
 * Called when a connection has no socket: an outgoing one that is still
 * wanted waits for its next attempt; anything else closes its timer and is
 * freed.
 */
static void conn_finish(nt_conn *c)
{
    nt_loop *l = c->l;
    if (c->tcp_live)
        return;
    if (c->outgoing && !c->user_closed && !l->closing_all) {
        uint64_t d = backoff_ms(l, ++c->attempts);
        c->state = ST_WAIT;
        uv_timer_start(&c->timer, backoff_fired, d, 0);
        return;
    }
    c->state = ST_FREEING;
    if (c->timer_live) {
        if (!uv_is_closing((uv_handle_t *)&c->timer))
            uv_close((uv_handle_t *)&c->timer, timer_closed);
        return;
    }
    conn_free(c);
}

static void tcp_closed(uv_handle_t *h)
{
    nt_conn *c = h->data;
    c->tcp_live = 0;
    c->shutting = 0;
    SSL_free(c->ssl);
    c->ssl = NULL;
    c->rx.len = 0;
    bytes_trim(&c->rx);
    conn_finish(c);
}

static void close_tcp(nt_conn *c)
{
    if (c->tcp_live && !uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, tcp_closed);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    nt_conn *c = req->data;
    /* Our FIN is out; the read side waits for the peer's (lingering close)
     * unless the shutdown failed. */
    if (status < 0)
        close_tcp(c);
}

/*
 * Ends the current attempt of a connection (loop thread): stops sending,
 * closes the socket (gracefully: pending writes, TLS close_notify and FIN
 * first, then waits up to LK_LINGER_MS for the peer's FIN, so that a
 * REFUSE frame is not lost in a reset) and reports on_close when due.
 */
static void conn_drop(nt_conn *c, const char *reason, int graceful)
{
    int was_open = c->opened, outgoing = c->outgoing;
    if (c->state != ST_CONNECTING && c->state != ST_HANDSHAKE &&
        c->state != ST_OPEN)
        return;
    uv_mutex_lock(&c->mu);
    c->up = 0;
    c->queued -= c->q.len;
    c->q.len = 0;
    uv_mutex_unlock(&c->mu);
    if (graceful && c->state != ST_CONNECTING) {
        if (c->ssl && SSL_is_init_finished(c->ssl)) {
            ERR_clear_error();
            (void)SSL_shutdown(c->ssl);
            ERR_clear_error();
            flush_tls(c, 0);
        }
    }
    c->state = ST_CLOSING;
    c->opened = 0;
    c->closing_at = uv_now(&c->l->uv);
    if (graceful && c->tcp_live && !c->shutting) {
        c->sreq.data = c;
        if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, shutdown_cb) == 0)
            c->shutting = 1;
        else
            close_tcp(c);
    } else {
        close_tcp(c);
    }
    if (outgoing && was_open && !c->user_closed && !c->l->closing_all)
        nt__log("connection to %s lost: %s (reconnecting)", c->target,
                reason);
    if (outgoing && !was_open)
        c->fails++;
    if (outgoing && !was_open && !c->user_closed && !c->l->closing_all &&
        !c->failing) {
        c->failing = 1;
        nt__log("connection to %s failed: %s (retrying with backoff)",
                c->target, reason);
    }
    if (!c->user_closed && c->cb.on_close && (was_open || outgoing))
        c->cb.on_close(c->user, c, reason);
}

/* ------------------------------------------------------------------------ */
/* Input. */

static void refuse(nt_conn *c, const char *reason, int send_frame)
{
    char w[160];
    nt_loop *l = c->l;
    nt__log("refused %s: %s", who(c, w, sizeof w), reason);
    if (send_frame) {
        nt_buf_reset(&l->fb);
        if (nt_put_refuse(&l->fb, reason) == NT_OK)
            send_frames(c, l->fb.data, l->fb.len, 0);
    }
    conn_drop(c, reason, 1);
}

/* Hands one complete frame to the application (or to the heartbeat). */
static void deliver(nt_conn *c, const nt_frame *f)
{
    char why[300], w[160], reason[256];
    if (!c->got_frame && f->type != NT_REFUSE) {
        c->got_frame = 1;
        c->attempts = 0; /* the peer took us: reset the backoff */
        c->failing = 0;
        c->fails = 0;
    }
    switch (f->type) {
    case NT_PING:
    case NT_PONG:
        return;
    case NT_REFUSE:
        if (nt_refuse_decode(f, reason, sizeof reason, w, sizeof w) !=
            NT_OK)
            snprintf(reason, sizeof reason, "(unreadable reason: %s)", w);
        nt__log("%s refused us: %s", who(c, w, sizeof w), reason);
        if (c->cb.on_frame)
            c->cb.on_frame(c->user, c, f);
        snprintf(why, sizeof why, "refused by peer: %s", reason);
        conn_drop(c, why, 1);
        return;
    case NT_BYE:
        if (c->cb.on_frame)
            c->cb.on_frame(c->user, c, f);
        conn_drop(c, "closed by peer (BYE)", 1);
        return;
    default:
        if (c->cb.on_frame)
            c->cb.on_frame(c->user, c, f);
    }
}

static void frame_error(nt_conn *c, const char *msg)
{
    char w[160], why[256];
    nt__log("frame error from %s: %s", who(c, w, sizeof w), msg);
    snprintf(why, sizeof why, "frame error: %s", msg);
    conn_drop(c, why, 0);
}

/*
 * Reassembles frames from decrypted bytes: complete frames are delivered
 * straight from `p`; only a partial frame is copied (into c->rx, at most
 * one frame).  Stops when the connection leaves ST_OPEN.
 */
static void feed(nt_conn *c, const uint8_t *p, size_t n)
{
    nt_frame f;
    size_t flen;
    char err[160];
    nt_status st;

    while (n > 0 && c->state == ST_OPEN) {
        if (c->rx.len > 0) {
            /* Complete the partial frame: first its header, then exactly
             * the payload the header announces. */
            size_t want, take;
            if (c->rx.len < NT_HEADER) {
                want = NT_HEADER - c->rx.len;
            } else {
                uint32_t len = (uint32_t)c->rx.p[4] |
                               (uint32_t)c->rx.p[5] << 8 |
                               (uint32_t)c->rx.p[6] << 16 |
                               (uint32_t)c->rx.p[7] << 24;
                want = NT_HEADER + (size_t)len - c->rx.len;
            }
            take = want < n ? want : n;
            if (bytes_reserve(&c->rx, take) != 0) {
                conn_drop(c, "out of memory", 0);
                return;
            }
            memcpy(c->rx.p + c->rx.len, p, take);
            c->rx.len += take;
            p += take;
            n -= take;
            st = nt_frame_parse(c->rx.p, c->rx.len, &f, &flen, err,
                                sizeof err);
            if (st == NT_AGAIN)
                continue;
            if (st != NT_OK) {
                frame_error(c, err);
                return;
            }
            c->rx.len = 0;
            deliver(c, &f);
            bytes_trim(&c->rx);
            continue;
        }
        st = nt_frame_parse(p, n, &f, &flen, err, sizeof err);
        if (st == NT_OK) {
            deliver(c, &f);
            p += flen;
            n -= flen;
        } else if (st == NT_AGAIN) {
            /* The header checks passed as far as the bytes go; keep them
             * (a header's own bounds are checked again once complete). */
            size_t keep = n;
            if (keep > NT_HEADER)
                keep = NT_HEADER;
            if (bytes_reserve(&c->rx, keep) != 0) {
                conn_drop(c, "out of memory", 0);
                return;
            }
            memcpy(c->rx.p, p, keep);
            c->rx.len = keep;
            p += keep;
            n -= keep;
        } else {
            frame_error(c, err);
            return;
        }
    }
}

/*
 * The handshake is complete (or there is none: plaintext): checks the
 * peer's identity and role, then asks the application (on_open).
 */
static void conn_opened(nt_conn *c)
{
    char name[NT_MAX_NAME + 1], why[256];
    int role = 0;
    nt_status st;

    if (c->tls) {
        st = nt__tls_peer_identity(c->ssl, name, sizeof name, &role, why,
                                   sizeof why);
        if (st != NT_OK) {
            refuse(c, why, 1);
            return;
        }
        snprintf(c->peer, sizeof c->peer, "%s", name);
        c->role = role;
        if (!c->outgoing && !(c->allowed & (1u << (unsigned)role))) {
            snprintf(why, sizeof why, "role %s is not accepted here",
                     nt_role_name(role));
            refuse(c, why, 1);
            return;
        }
        if (c->outgoing && role != c->expect_role) {
            snprintf(why, sizeof why, "expected role %s, peer has role %s",
                     nt_role_name(c->expect_role), nt_role_name(role));
            refuse(c, why, 1);
            return;
        }
    } else {
        snprintf(c->peer, sizeof c->peer, "%s", c->addr);
        c->role = 0;
    }
    c->state = ST_OPEN;
    c->opened = 1;
    c->got_frame = 0;
    uv_mutex_lock(&c->mu);
    c->up = 1;
    uv_mutex_unlock(&c->mu);
    if (c->outgoing && c->failing)
        nt__log("connected to %s after %u failed attempts", c->target,
                c->fails);
    if (c->cb.on_open &&
        c->cb.on_open(c->user, c, c->peer, c->role) != 0 &&
        c->state == ST_OPEN) {
        c->opened = 0; /* refused by the application: no on_close */
        refuse(c, "refused by the application", 1);
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    nt_conn *c = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)c->l->rbuf, LK_BUF);
}

/*
 * Once the handshake is over and both memory BIOs are empty, replaces them
 * with new ones: a memory BIO keeps the largest size it ever held (the
 * handshake's flights, a few KB), which idle connections would carry for
 * their whole life.  Frames are small afterwards.  Tried once per attempt.
 */
static void fresh_bios(nt_conn *c)
{
    BIO *rb, *wb;
    c->bios_fresh = 1;
    if (c->ssl == NULL || BIO_ctrl_pending(SSL_get_rbio(c->ssl)) != 0 ||
        BIO_ctrl_pending(SSL_get_wbio(c->ssl)) != 0)
        return;
    rb = BIO_new(BIO_s_mem());
    wb = BIO_new(BIO_s_mem());
    if (rb == NULL || wb == NULL) {
        BIO_free(rb);
        BIO_free(wb);
        ERR_clear_error();
        return; /* keep the old ones */
    }
    SSL_set_bio(c->ssl, rb, wb); /* frees the old pair */
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    nt_conn *c = s->data;
    char why[256];
    int r;

    if (nread == 0)
        return;
    if (nread < 0) {
        if (c->state == ST_CLOSING) {
            close_tcp(c);
            return;
        }
        if (nread == UV_EOF)
            snprintf(why, sizeof why, "connection closed by peer");
        else
            snprintf(why, sizeof why, "read failed: %s",
                     uv_strerror((int)nread));
        conn_drop(c, why, 0);
        return;
    }
    if (c->state != ST_HANDSHAKE && c->state != ST_OPEN)
        return; /* lingering close: discard */
    c->last_rx = uv_now(&c->l->uv);
    if (c->tls == NULL) {
        feed(c, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    if (BIO_write(SSL_get_rbio(c->ssl), buf->base, (int)nread) != nread) {
        conn_drop(c, "out of memory", 0);
        return;
    }
    if (c->state == ST_HANDSHAKE) {
        ERR_clear_error();
        r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            nt_status st = nt__tls_failure(c->ssl, r, why, sizeof why);
            flush_tls(c, 0); /* the next flight or an alert */
            if (st == NT_AGAIN)
                return;
            if (c->outgoing) {
                conn_drop(c, why, 0);
            } else {
                char w[160];
                nt__log("refused %s: %s", who(c, w, sizeof w), why);
                conn_drop(c, why, 1);
            }
            return;
        }
        /* Open (or refuse) before our last flight leaves: a peer that sees
         * the handshake done finds this side ready. */
        conn_opened(c);
        flush_tls(c, 0);
        if (c->state != ST_OPEN)
            return;
    }
    while (c->state == ST_OPEN) {
        ERR_clear_error();
        r = SSL_read(c->ssl, c->l->pbuf, (int)LK_BUF);
        if (r > 0) {
            feed(c, c->l->pbuf, (size_t)r);
            /* Nothing left, neither in OpenSSL (a record in part, plain
             * bytes) nor in the read BIO: the next SSL_read would only
             * say WANT_READ, and cost (with SSL_MODE_RELEASE_BUFFERS) a
             * record buffer's allocation; on a link that sends one small
             * frame at a time that call was as dear as the read. */
            if (c->ssl && !SSL_has_pending(c->ssl) &&
                BIO_ctrl_pending(SSL_get_rbio(c->ssl)) == 0)
                break;
            continue;
        }
        if (SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ)
            break;
        nt__tls_failure(c->ssl, r, why, sizeof why);
        conn_drop(c, why, 0);
        return;
    }
    if (c->state == ST_OPEN) {
        flush_tls(c, 0); /* post-handshake messages, key updates */
        if (!c->bios_fresh)
            fresh_bios(c);
    }
}

/*
 * Sets up a connected socket: TLS object (accept or connect state) with
 * memory BIOs, reading, and the handshake's first flight for a client.
 * Plaintext connections open at once.  Returns 0, or -1 after dropping.
 */
static int conn_start_io(nt_conn *c)
{
    int r;
    c->started = c->last_rx = c->last_tx = uv_now(&c->l->uv);
    uv_tcp_nodelay(&c->tcp, 1);
    c->state = ST_HANDSHAKE;
    if (c->tls) {
        BIO *rb, *wb;
        c->ssl = SSL_new(nt__tls_ctx(c->tls));
        rb = BIO_new(BIO_s_mem());
        wb = BIO_new(BIO_s_mem());
        if (c->ssl == NULL || rb == NULL || wb == NULL) {
            BIO_free(rb);
            BIO_free(wb);
            ERR_clear_error();
            conn_drop(c, "cannot create a TLS session", 0);
            return -1;
        }
        SSL_set_bio(c->ssl, rb, wb);
        if (nt__tls_apply(c->tls, c->ssl,
                          c->outgoing ? c->target : NULL) != 0) {
            conn_drop(c, "cannot install the TLS identity", 0);
            return -1;
        }
        if (c->outgoing)
            SSL_set_connect_state(c->ssl);
        else
            SSL_set_accept_state(c->ssl);
    }
    r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (r < 0) {
        char why[128];
        snprintf(why, sizeof why, "cannot read: %s", uv_strerror(r));
        conn_drop(c, why, 0);
        return -1;
    }
    if (c->tls == NULL) {
        conn_opened(c);
    } else if (c->outgoing) {
        char why[256];
        ERR_clear_error();
        r = SSL_do_handshake(c->ssl);
        if (r != 1 &&
            nt__tls_failure(c->ssl, r, why, sizeof why) != NT_AGAIN) {
            conn_drop(c, why, 0);
            return -1;
        }
        flush_tls(c, 0);
    }
    return 0;
}

/* A new connection with its mutex and list entry (loop thread). */
static nt_conn *conn_new(nt_loop *l)
{
    nt_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    if (uv_mutex_init(&c->mu) != 0) {
        free(c);
        return NULL;
    }
    c->l = l;
    c->qmax = l->tune.sendq_max;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    l->nconns++;
    return c;
}

/* ------------------------------------------------------------------------ */
/* Listeners. */

static void spare_closed(uv_handle_t *h)
{
    nt_listener *ls = h->data;
    ls->spare_busy = 0;
    if (ls->closed)
        free(ls);
}

/*
 * Refuses (closes at once, before TLS) an accepted connection whose
 * descriptor is within LK_FD_RESERVE of the open-file limit, so that the
 * node keeps descriptors for its spools, state files and its own outgoing
 * links (descriptors are allocated lowest first: the number approximates
 * how many are open).  Logged at most once per 5 s.  Returns 1 when
 * refused.
 */
static int near_fd_limit(nt_listener *ls, nt_conn *c)
{
    uv_os_fd_t fd;
    uint64_t now;
    if (ls->fd_limit <= 2 * LK_FD_RESERVE ||
        uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 ||
        (uint64_t)fd + LK_FD_RESERVE < ls->fd_limit)
        return 0;
    now = uv_now(&ls->l->uv);
    if (ls->fail_logged == 0 || now - ls->fail_logged >= 5000) {
        nt__log("refused %s: open-file limit nearly reached (descriptor %d, "
                "limit %llu, %llu more refused or failed in the last 5 s)",
                c->addr, (int)fd, (unsigned long long)ls->fd_limit,
                (unsigned long long)ls->fail_quiet);
        ls->fail_logged = now;
        ls->fail_quiet = 0;
    } else {
        ls->fail_quiet++;
    }
    c->state = ST_CLOSING;
    close_tcp(c);
    return 1;
}

static void on_connection(uv_stream_t *server, int status)
{
    nt_listener *ls = server->data;
    nt_loop *l = ls->l;
    struct sockaddr_storage sa;
    int salen = sizeof sa, r;
    nt_conn *c;

    if (status < 0) {
        /* Out of descriptors (EMFILE), libuv accepts and closes to keep
         * the queue moving: one line per 5 s, not one per attempt. */
        uint64_t now = uv_now(&l->uv);
        if (ls->fail_logged == 0 || now - ls->fail_logged >= 5000) {
            nt__log("accept on port %d failed: %s (%llu more failures not "
                    "logged in the last 5 s)", ls->port, uv_strerror(status),
                    (unsigned long long)ls->fail_quiet);
            ls->fail_logged = now;
            ls->fail_quiet = 0;
        } else {
            ls->fail_quiet++;
        }
        return;
    }
    if (l->closing_all)
        return;
    c = conn_new(l);
    if (c == NULL || uv_tcp_init(&l->uv, &c->tcp) != 0) {
        nt__log("accept on port %d: out of memory", ls->port);
        if (c)
            conn_free(c);
        /* Take the pending connection off the queue and close it, with the
         * listener's spare handle (else the listener would stall). */
        if (!ls->spare_busy && uv_tcp_init(&l->uv, &ls->spare) == 0) {
            ls->spare_busy = 1;
            ls->spare.data = ls;
            (void)uv_accept(server, (uv_stream_t *)&ls->spare);
            uv_close((uv_handle_t *)&ls->spare, spare_closed);
        }
        return;
    }
    c->tcp.data = c;
    c->tcp_live = 1;
    c->state = ST_HANDSHAKE;
    c->cb = ls->cb;
    c->user = ls->user;
    c->tls = ls->tls;
    c->allowed = ls->allowed;
    r = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (r < 0) {
        nt__log("accept on port %d failed: %s", ls->port, uv_strerror(r));
        c->state = ST_CLOSING;
        close_tcp(c);
        return;
    }
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &salen) == 0)
        sockaddr_text((struct sockaddr *)&sa, c->addr, sizeof c->addr);
    else
        snprintf(c->addr, sizeof c->addr, "?");
    if (near_fd_limit(ls, c))
        return;
    (void)conn_start_io(c);
}

typedef struct listen_req {
    nt_listener *ls;
    struct sockaddr_storage sa;
    const char *addr;
    nt_status st;
    char err[200];
} listen_req;

static void listener_closed(uv_handle_t *h)
{
    nt_listener *ls = h->data;
    ls->closed = 1;
    if (!ls->spare_busy)
        free(ls);
}

static void do_listen(void *arg)
{
    listen_req *q = arg;
    nt_listener *ls = q->ls;
    nt_loop *l = ls->l;
    struct sockaddr_storage sa;
    int salen = sizeof sa, r;

    r = uv_tcp_init(&l->uv, &ls->tcp);
    if (r < 0) {
        snprintf(q->err, sizeof q->err, "listen on %s: %s", q->addr,
                 uv_strerror(r));
        q->st = NT_EIO;
        free(ls);
        return;
    }
    ls->tcp.data = ls;
    r = uv_tcp_bind(&ls->tcp, (struct sockaddr *)&q->sa, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&ls->tcp, LK_BACKLOG, on_connection);
    if (r == 0)
        r = uv_tcp_getsockname(&ls->tcp, (struct sockaddr *)&sa, &salen);
    if (r < 0) {
        snprintf(q->err, sizeof q->err, "listen on %s: %s", q->addr,
                 uv_strerror(r));
        q->st = NT_EIO;
        uv_close((uv_handle_t *)&ls->tcp, listener_closed);
        return;
    }
    {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
            ls->fd_limit = (uint64_t)rl.rlim_cur;
    }
    ls->port = ntohs(sa.ss_family == AF_INET6
                         ? ((struct sockaddr_in6 *)&sa)->sin6_port
                         : ((struct sockaddr_in *)&sa)->sin_port);
    ls->next = l->listeners;
    l->listeners = ls;
    q->st = NT_OK;
}

/* ------------------------------------------------------------------------ */
/* Outgoing connections. */

static void connect_cb(uv_connect_t *req, int status)
{
    nt_conn *c = req->data;
    char why[200];
    if (c->state != ST_CONNECTING)
        return; /* cancelled by a close */
    if (status < 0) {
        snprintf(why, sizeof why, "connect failed: %s", uv_strerror(status));
        conn_drop(c, why, 0);
        return;
    }
    (void)conn_start_io(c);
}

/* Binds an outgoing socket to c->local (the port is left to connect on
 * Linux: IP_BIND_ADDRESS_NO_PORT, so ports are per destination).  Returns
 * 0 or a libuv error. */
static int bind_local(nt_conn *c)
{
#ifdef __linux__
    uv_os_fd_t fd;
    int one = 1;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
        (void)setsockopt(fd, IPPROTO_IP, LK_BIND_NO_PORT, &one, sizeof one);
#endif
    return uv_tcp_bind(&c->tcp, (struct sockaddr *)&c->local, 0);
}

/* One attempt: a fresh socket and a TCP connect (loop thread). */
static void start_attempt(nt_conn *c)
{
    int r;
    char why[200];
    if (c->has_local)
        r = uv_tcp_init_ex(&c->l->uv, &c->tcp, c->local.ss_family);
    else
        r = uv_tcp_init(&c->l->uv, &c->tcp);
    if (r < 0) {
        /* No socket: count it as a failed attempt and wait. */
        snprintf(why, sizeof why, "cannot create a socket: %s",
                 uv_strerror(r));
        c->fails++;
        if (!c->failing) {
            c->failing = 1;
            nt__log("connection to %s failed: %s (retrying with backoff)",
                    c->target, why);
        }
        if (c->cb.on_close && !c->user_closed)
            c->cb.on_close(c->user, c, why);
        conn_finish(c);
        return;
    }
    c->tcp.data = c;
    c->tcp_live = 1;
    c->shutting = 0;
    c->opened = 0;
    c->got_frame = 0;
    c->bios_fresh = 0;
    c->peer[0] = '\0';
    c->state = ST_CONNECTING;
    c->started = c->last_rx = c->last_tx = uv_now(&c->l->uv);
    c->creq.data = c;
    if (c->has_local && (r = bind_local(c)) < 0) {
        snprintf(why, sizeof why, "cannot bind to the local address: %s",
                 uv_strerror(r));
        conn_drop(c, why, 0);
        return;
    }
    r = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&c->sa,
                       connect_cb);
    if (r < 0) {
        snprintf(why, sizeof why, "connect failed: %s", uv_strerror(r));
        conn_drop(c, why, 0);
    }
}

static void do_connect(void *arg)
{
    nt_conn *c = arg;
    nt_loop *l = c->l;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    l->nconns++;
    c->qmax = l->tune.sendq_max;
    c->timer.data = c;
    if (uv_timer_init(&l->uv, &c->timer) == 0)
        c->timer_live = 1;
    if (l->closing_all) {
        conn_finish(c);
        return;
    }
    start_attempt(c);
}

/* ------------------------------------------------------------------------ */
/* The loop. */

/* Heartbeats and deadlines, every few hundred milliseconds. */
static void sweep_cb(uv_timer_t *t)
{
    nt_loop *l = t->data;
    uint64_t now = uv_now(&l->uv);
    nt_conn *c, *next;
    char why[128];

    for (c = l->conns; c; c = next) {
        next = c->next;
        switch (c->state) {
        case ST_CONNECTING:
        case ST_HANDSHAKE:
            if (now - c->started >= l->tune.idle_ms) {
                snprintf(why, sizeof why, "%s timeout after %u ms",
                         c->state == ST_CONNECTING ? "connect" : "handshake",
                         (unsigned)(now - c->started));
                if (!c->outgoing) {
                    char w[160];
                    nt__log("refused %s: %s", who(c, w, sizeof w), why);
                }
                conn_drop(c, why, 0);
            }
            break;
        case ST_OPEN:
            if (now - c->last_rx >= l->tune.idle_ms) {
                char w[160];
                snprintf(why, sizeof why,
                         "heartbeat timeout: nothing received for %u ms",
                         (unsigned)(now - c->last_rx));
                nt__log("closing %s: %s", who(c, w, sizeof w), why);
                conn_drop(c, why, 0);
            } else if (now - c->last_tx >= l->tune.ping_ms) {
                nt_buf_reset(&l->fb);
                if (nt_put_u64(&l->fb, NT_PING, ++l->nonce) == NT_OK)
                    send_frames(c, l->fb.data, l->fb.len, 0);
            }
            break;
        case ST_CLOSING:
            if (now - c->closing_at >= LK_LINGER_MS)
                close_tcp(c);
            break;
        default:
            break;
        }
    }
}

static uint64_t sweep_interval(const nt__link_tuning *t)
{
    uint64_t m = t->ping_ms < t->idle_ms ? t->ping_ms : t->idle_ms;
    m /= 4;
    if (m < 5)
        m = 5;
    if (m > 500)
        m = 500;
    return m;
}

/* Closes every handle so that uv_run returns (loop thread). */
static void close_all(nt_loop *l)
{
    nt_conn *c, *next;
    nt_listener *ls, *lnext;
    l->closing_all = 1;
    for (c = l->conns; c; c = next) {
        next = c->next;
        if (c->state == ST_WAIT) {
            uv_timer_stop(&c->timer);
            conn_finish(c);
        } else {
            conn_drop(c, "event loop stopped", 0);
            if (c->state == ST_CLOSING)
                close_tcp(c); /* a lingering close ends now */
        }
    }
    for (ls = l->listeners; ls; ls = lnext) {
        lnext = ls->next;
        uv_close((uv_handle_t *)&ls->tcp, listener_closed);
    }
    l->listeners = NULL;
    uv_close((uv_handle_t *)&l->sweep, NULL);
    uv_close((uv_handle_t *)&l->pace, NULL);
    uv_close((uv_handle_t *)&l->polled_chk, NULL);
    uv_close((uv_handle_t *)&l->wake, NULL);
}

/* Runs posted calls, drains dirty connections, and stops when asked. */
static void wake_cb(uv_async_t *a)
{
    nt_loop *l = a->data;
    lk_call *calls, *k;
    nt_conn *c;
    int stopping, n;

    uv_mutex_lock(&l->mu);
    calls = l->calls;
    l->calls = l->calls_tail = NULL;
    stopping = l->stopping;
    uv_mutex_unlock(&l->mu);
    while ((k = calls) != NULL) {
        calls = k->next;
        k->fn(k->arg);
        free(k);
    }
    /* Dirty connections are taken off the list one at a time (conn_free
     * unlinks a freed one), at most LK_DRAIN per wake-up so that busy
     * senders do not starve reads and timers. */
    for (n = 0; n < LK_DRAIN; n++) {
        uv_mutex_lock(&l->mu);
        c = l->dirty;
        if (c) {
            l->dirty = c->dirty_next;
            c->dirty_next = NULL;
        }
        uv_mutex_unlock(&l->mu);
        if (c == NULL)
            break;
        drain_queue(c, 1);
    }
    if (n == LK_DRAIN)
        uv_async_send(&l->wake);
    if (stopping && !l->closing_all)
        close_all(l);
}

/*
 * Before each poll: with many connections (LK_BATCH_CONNS), waits until
 * LK_BATCH_NS after the previous poll returned, so that one poll takes
 * the events of many links.  An edge holding thousands of links that each
 * send a message a second otherwise woke up for one or two reads at a
 * time: a thread switch per wake-up cost more than the reads.  The first
 * event after an idle spell is taken at once; the others wait at most
 * LK_BATCH_NS (timers too).
 */
static void pace_cb(uv_prepare_t *h)
{
    nt_loop *l = h->data;
    uint64_t now, until;
    if (l->nconns < LK_BATCH_CONNS || l->closing_all)
        return;
    now = uv_hrtime();
    until = l->polled + LK_BATCH_NS;
    if (now < until) {
        struct timespec ts = {0, (long)(until - now)};
        nanosleep(&ts, NULL);
    }
}

static void polled_cb(uv_check_t *h)
{
    nt_loop *l = h->data;
    l->polled = uv_hrtime();
}

static void loop_main(void *arg)
{
    nt_loop *l = arg;
    sigset_t set;
    /* Writes to a socket the peer closed raise SIGPIPE on this thread;
     * block it here (EPIPE is handled) without touching the process. */
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* Record buffers, frames and a deploy's module pass through here: a
     * first deploy to a fresh node no longer faults them in page by page. */
    pl_heap_warm(LK_WARM);
    uv_run(&l->uv, UV_RUN_DEFAULT);
}

void nt__link_tuning_default(nt__link_tuning *t)
{
    t->ping_ms = 2000;
    t->idle_ms = 6000;
    t->backoff_min_ms = 100;
    t->backoff_max_ms = 10000;
    t->sendq_max = 8u << 20;
}

/*
 * Creates the loop and starts its thread.  On success *out is owned by the
 * caller (nt_loop_free).  Errors: NT_ENOMEM, NT_EIO (libuv), with err.
 */
nt_status nt_loop_new(nt_loop **out, char *err, size_t errlen)
{
    nt_loop *l;
    int r, stage = 0;

    if (out == NULL) {
        nt__errf(err, errlen, "nt_loop_new: NULL argument");
        return NT_EARG;
    }
    *out = NULL;
    l = calloc(1, sizeof *l);
    if (l == NULL) {
        nt__errf(err, errlen, "out of memory");
        return NT_ENOMEM;
    }
    nt__link_tuning_default(&l->tune);
    l->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)l ^ 0x9E3779B97F4A7C15ull;
    if (l->rng == 0)
        l->rng = 1;
    nt_buf_init(&l->fb, 0);
    if ((r = uv_loop_init(&l->uv)) < 0)
        goto fail;
    stage = 1;
    if ((r = uv_mutex_init(&l->mu)) < 0)
        goto fail;
    stage = 2;
    if ((r = uv_cond_init(&l->cv)) < 0)
        goto fail;
    stage = 3;
    l->wake.data = l;
    l->sweep.data = l;
    if ((r = uv_async_init(&l->uv, &l->wake, wake_cb)) < 0)
        goto fail;
    uv_timer_init(&l->uv, &l->sweep);
    uv_timer_start(&l->sweep, sweep_cb, sweep_interval(&l->tune),
                   sweep_interval(&l->tune));
    l->pace.data = l;
    l->polled_chk.data = l;
    uv_prepare_init(&l->uv, &l->pace);
    uv_prepare_start(&l->pace, pace_cb);
    uv_check_init(&l->uv, &l->polled_chk);
    uv_check_start(&l->polled_chk, polled_cb);
    if ((r = uv_thread_create(&l->thread, loop_main, l)) < 0) {
        uv_close((uv_handle_t *)&l->wake, NULL);
        uv_close((uv_handle_t *)&l->sweep, NULL);
        uv_close((uv_handle_t *)&l->pace, NULL);
        uv_close((uv_handle_t *)&l->polled_chk, NULL);
        uv_run(&l->uv, UV_RUN_DEFAULT);
        goto fail;
    }
    *out = l;
    return NT_OK;
fail:
    nt__errf(err, errlen, "cannot start an event loop: %s", uv_strerror(r));
    if (stage >= 3)
        uv_cond_destroy(&l->cv);
    if (stage >= 2)
        uv_mutex_destroy(&l->mu);
    if (stage >= 1)
        uv_loop_close(&l->uv);
    nt_buf_free(&l->fb);
    free(l);
    return NT_EIO;
}

/*
 * Stops the loop: closes every connection (on_close for open ones) and
 * listener, joins the thread and frees everything.  Must not be called on
 * the loop's own thread.
 */
void nt_loop_free(nt_loop *l)
{
    lk_call *k;
    if (l == NULL)
        return;
    uv_mutex_lock(&l->mu);
    l->stopping = 1;
    uv_mutex_unlock(&l->mu);
    uv_async_send(&l->wake);
    uv_thread_join(&l->thread);
    /* Every handle is closed once uv_run returned. */
    (void)uv_loop_close(&l->uv);
    while ((k = l->calls) != NULL) { /* cannot happen: drained at stop */
        l->calls = k->next;
        free(k);
    }
    uv_cond_destroy(&l->cv);
    uv_mutex_destroy(&l->mu);
    nt_buf_free(&l->fb);
    free(l);
}

/* Queues fn(arg) for the loop thread: NT_OK, NT_ENOMEM, or NT_ECLOSED
 * when the loop is stopping. */
nt_status nt_loop_call(nt_loop *l, void (*fn)(void *), void *arg)
{
    lk_call *k;
    if (l == NULL || fn == NULL)
        return NT_EARG;
    k = malloc(sizeof *k);
    if (k == NULL)
        return NT_ENOMEM;
    k->fn = fn;
    k->arg = arg;
    k->next = NULL;
    uv_mutex_lock(&l->mu);
    if (l->stopping) {
        uv_mutex_unlock(&l->mu);
        free(k);
        return NT_ECLOSED;
    }
    if (l->calls_tail)
        l->calls_tail->next = k;
    else
        l->calls = k;
    l->calls_tail = k;
    uv_mutex_unlock(&l->mu);
    uv_async_send(&l->wake);
    return NT_OK;
}

typedef struct lk_sync {
    nt_loop *l;
    void (*fn)(void *);
    void *arg;
    int done;
} lk_sync;

static void sync_tramp(void *arg)
{
    lk_sync *s = arg;
    s->fn(s->arg);
    uv_mutex_lock(&s->l->mu);
    s->done = 1;
    uv_cond_broadcast(&s->l->cv);
    uv_mutex_unlock(&s->l->mu);
}

/* Runs fn(arg) on the loop thread and waits for it (directly when already
 * there).  NT_ECLOSED when the loop is stopping. */
static nt_status loop_sync(nt_loop *l, void (*fn)(void *), void *arg)
{
    lk_sync s = {l, fn, arg, 0};
    nt_status st;
    if (on_loop_thread(l)) {
        fn(arg);
        return NT_OK;
    }
    st = nt_loop_call(l, sync_tramp, &s);
    if (st != NT_OK)
        return st;
    uv_mutex_lock(&l->mu);
    while (!s.done)
        uv_cond_wait(&l->cv, &l->mu);
    uv_mutex_unlock(&l->mu);
    return NT_OK;
}

typedef struct tune_req {
    nt_loop *l;
    nt__link_tuning t;
} tune_req;

static void do_tune(void *arg)
{
    tune_req *q = arg;
    uint64_t iv = sweep_interval(&q->t);
    q->l->tune = q->t;
    if (!q->l->closing_all)
        uv_timer_start(&q->l->sweep, sweep_cb, iv, iv);
}

nt_status nt__loop_tune(nt_loop *l, const nt__link_tuning *t)
{
    tune_req q;
    if (l == NULL || t == NULL || t->ping_ms == 0 || t->idle_ms == 0 ||
        t->backoff_min_ms == 0 || t->backoff_max_ms < t->backoff_min_ms ||
        t->sendq_max == 0)
        return NT_EARG;
    q.l = l;
    q.t = *t;
    return loop_sync(l, do_tune, &q);
}

/* ------------------------------------------------------------------------ */
/* Public link API. */

/*
 * Binds and listens on addr (on the loop thread; waits for it).  The
 * listener is owned by the loop and closed by nt_loop_free; tls (borrowed)
 * and user must outlive the loop.  Errors: NT_EARG (bad address), NT_EIO
 * (bind/listen), NT_ENOMEM, NT_ECLOSED (loop stopping).
 */
nt_status nt_listen(nt_loop *l, nt_tls *tls, const char *addr,
                    unsigned allowed_roles, const nt_callbacks *cb,
                    void *user, nt_listener **out, char *err, size_t errlen)
{
    listen_req q;
    nt_listener *ls;
    nt_status st;

    if (out)
        *out = NULL;
    if (l == NULL || cb == NULL || out == NULL) {
        nt__errf(err, errlen, "nt_listen: NULL argument");
        return NT_EARG;
    }
    memset(&q, 0, sizeof q);
    st = resolve(addr, 1, &q.sa, err, errlen);
    if (st != NT_OK)
        return st;
    ls = calloc(1, sizeof *ls);
    if (ls == NULL) {
        nt__errf(err, errlen, "out of memory");
        return NT_ENOMEM;
    }
    ls->l = l;
    ls->tls = tls;
    ls->allowed = allowed_roles;
    ls->cb = *cb;
    ls->user = user;
    q.ls = ls;
    q.addr = addr;
    q.st = NT_EIO;
    st = loop_sync(l, do_listen, &q);
    if (st != NT_OK) {
        free(ls);
        nt__errf(err, errlen, "listen on %s: event loop stopped", addr);
        return st;
    }
    if (q.st != NT_OK) {
        nt__errf(err, errlen, "%s", q.err);
        return q.st;
    }
    if (tls == NULL)
        nt__log("WARNING: listening on %s (port %d) in plaintext (insecure):"
                " peers are not authenticated",
                addr, ls->port);
    *out = ls;
    return NT_OK;
}

int nt_listener_port(const nt_listener *ls)
{
    return ls ? ls->port : -1;
}

/* Starts connecting to addr: nt_connect_from without a local address. */
nt_status nt_connect(nt_loop *l, nt_tls *tls, const char *addr,
                     int expect_role, const nt_callbacks *cb, void *user,
                     nt_conn **out, char *err, size_t errlen)
{
    return nt_connect_from(l, tls, addr, NULL, expect_role, cb, user, out,
                           err, errlen);
}

/*
 * Starts connecting to addr (asynchronously; reconnecting until
 * nt_conn_close), from local_ip when not NULL.  *out is owned by the loop:
 * valid until nt_conn_close or nt_loop_free.  tls (borrowed) and user must
 * outlive it.
 */
nt_status nt_connect_from(nt_loop *l, nt_tls *tls, const char *addr,
                          const char *local_ip, int expect_role,
                          const nt_callbacks *cb, void *user, nt_conn **out,
                          char *err, size_t errlen)
{
    nt_conn *c;
    nt_status st;

    if (out)
        *out = NULL;
    if (l == NULL || cb == NULL || out == NULL) {
        nt__errf(err, errlen, "nt_connect: NULL argument");
        return NT_EARG;
    }
    if (tls && nt_role_name(expect_role)[0] == '?') {
        nt__errf(err, errlen, "nt_connect: unknown role %d", expect_role);
        return NT_EARG;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        nt__errf(err, errlen, "out of memory");
        return NT_ENOMEM;
    }
    st = resolve(addr, 0, &c->sa, err, errlen);
    if (st != NT_OK) {
        free(c);
        return st;
    }
    if (local_ip != NULL) {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&c->local;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&c->local;
        if (uv_ip4_addr(local_ip, 0, a4) != 0 &&
            uv_ip6_addr(local_ip, 0, a6) != 0) {
            nt__errf(err, errlen, "local address '%s' is not a numeric IP "
                     "address", local_ip);
            free(c);
            return NT_EARG;
        }
        c->has_local = 1;
    }
    if (uv_mutex_init(&c->mu) != 0) {
        free(c);
        nt__errf(err, errlen, "out of resources");
        return NT_ENOMEM;
    }
    c->l = l;
    c->outgoing = 1;
    c->cb = *cb;
    c->user = user;
    c->tls = tls;
    c->expect_role = expect_role;
    snprintf(c->target, sizeof c->target, "%s", addr);
    sockaddr_text((struct sockaddr *)&c->sa, c->addr, sizeof c->addr);
    c->state = ST_WAIT;
    if (tls == NULL)
        nt__log("WARNING: connecting to %s in plaintext (insecure): the peer"
                " is not authenticated",
                addr);
    st = nt_loop_call(l, do_connect, c);
    if (st != NT_OK) {
        uv_mutex_destroy(&c->mu);
        free(c);
        nt__errf(err, errlen, "connect to %s: %s", addr, nt_status_msg(st));
        return st;
    }
    *out = c;
    return NT_OK;
}

/*
 * Queues whole frames; thread-safe.  NT_ECLOSED when not open, NT_EFULL
 * when the queue plus unfinished writes would exceed the limit (a single
 * send into an empty queue is always taken), NT_ENOMEM.
 */
nt_status nt_conn_send(nt_conn *c, const uint8_t *data, size_t len)
{
    return nt_conn_send2(c, data, len, NULL, 0);
}

nt_status nt_conn_send2(nt_conn *c, const uint8_t *data, size_t len,
                        const uint8_t *data2, size_t len2)
{
    nt_loop *l;
    int wake = 0;
    nt_status st = NT_OK;

    if (c == NULL || (data == NULL && len > 0) ||
        (data2 == NULL && len2 > 0) || len2 > SIZE_MAX - len)
        return NT_EARG;
    if (len + len2 == 0)
        return NT_OK;
    l = c->l;
    uv_mutex_lock(&c->mu);
    if (!c->up) {
        st = NT_ECLOSED;
    } else if (c->queued > 0 && c->queued + len + len2 > c->qmax) {
        st = NT_EFULL;
    } else if (bytes_reserve(&c->q, len + len2) != 0) {
        st = NT_ENOMEM;
    } else {
        if (len > 0)
            memcpy(c->q.p + c->q.len, data, len);
        if (len2 > 0)
            memcpy(c->q.p + c->q.len + len, data2, len2);
        c->q.len += len + len2;
        c->queued += len + len2;
        if (!c->dirty) {
            c->dirty = 1;
            uv_mutex_lock(&l->mu);
            c->dirty_next = l->dirty;
            l->dirty = c;
            uv_mutex_unlock(&l->mu);
            wake = 1;
        }
    }
    uv_mutex_unlock(&c->mu);
    if (wake)
        uv_async_send(&l->wake);
    return st;
}

/* The close itself (loop thread): queued frames are still sent, then a
 * graceful close; no callback runs for c afterwards. */
static void do_close(void *arg)
{
    nt_conn *c = arg;
    if (c->user_closed)
        return;
    c->user_closed = 1;
    if (c->state == ST_OPEN) {
        drain_queue(c, 0);
        conn_drop(c, "closed locally", 1);
    } else if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE) {
        conn_drop(c, "closed locally", 0);
    } else if (c->state == ST_WAIT) {
        uv_timer_stop(&c->timer);
        conn_finish(c);
    }
    /* ST_CLOSING: tcp_closed frees it (user_closed); ST_FREEING: already
     * going. */
}

void nt_conn_close(nt_conn *c)
{
    if (c == NULL)
        return;
    uv_mutex_lock(&c->mu);
    c->up = 0;
    uv_mutex_unlock(&c->mu);
    (void)loop_sync(c->l, do_close, c);
}

const char *nt_conn_peer(const nt_conn *c)
{
    if (c == NULL)
        return "?";
    return c->peer[0] ? c->peer : c->addr;
}

int nt_conn_resumed(const nt_conn *c)
{
    /* ssl is set before the connection opens and only freed with it */
    return c != NULL && c->ssl != NULL && SSL_session_reused(c->ssl) == 1;
}
