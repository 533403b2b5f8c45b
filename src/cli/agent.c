/*
 * agent.c - `isoflow agent`: an operator's kept connections to running
 * nodes, and the client side the deploy commands use to go through it.
 *
 * A cold `isoflow deploy` spends most of its time before its request
 * leaves: OpenSSL's start, the TLS context and a handshake, in a process
 * that has to fault every page of that code in (docs/DEPLOY.md, "Where a
 * deploy's milliseconds go").  The agent does that once.  It holds the
 * operator identity (--certs/--as), keeps one TLS connection per node the
 * commands have asked for (reconnected by the link layer when a node
 * restarts) and listens on a Unix socket next to the operator's key,
 * DIR/NAME.agent, mode 0600, for processes of its own user only (checked
 * with SO_PEERCRED).  Like ssh's ControlMaster: whoever may use the socket
 * may act as the operator, exactly as whoever may read NAME.key.
 *
 * The socket protocol is the wire protocol's frames, in plain text:
 *   command -> agent  CTL id 0 {"open": "HOST:PORT", "role": R}: bind
 *                     this socket to the node at that address (R: the
 *                     nt_role it must present)
 *   agent -> command  CTL_REPLY id 0 {"open": true, "peer": NAME,
 *                     "resumed": 0|1} once the TLS link is up, or
 *                     {"down": REASON} when it cannot be (then it closes)
 *   command -> agent  CTL frames, id >= 1: sent to the node as they are,
 *                     with the id renumbered (several commands share a
 *                     link); the node's CTL_REPLY frames come back with
 *                     the command's id
 *   agent -> command  CTL_REPLY id 0 {"down": REASON} when the link is
 *                     lost, then the socket closes.
 * Anything else closes the socket with a logged reason.
 */
#define _GNU_SOURCE /* SO_PEERCRED, struct ucred */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "flow.h"
#include "net.h"

/* ------------------------------------------------------------------------ */
/* Shared: socket path, frames over a blocking socket. */

int cli_agent_path(const char *certs, const char *as, char *out, size_t cap)
{
    struct sockaddr_un sa;
    int n = snprintf(out, cap, "%s/%s.agent", certs, as);
    if (n < 0 || (size_t)n >= cap || (size_t)n >= sizeof sa.sun_path)
        return -1;
    return 0;
}

/* Fills sa for path: 0, or -1 when the path is too long. */
static int un_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path)
        return -1;
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return 0;
}

/* Writes all of buf (blocking): 0, or -1 with errno. */
static int write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The client side (isoflow deploy / rollback / versions). */

struct cli_agent_conn {
    int fd;
    int role;
    const nt_callbacks *cb;
    void *user;
    pthread_t th;
    int th_started;
    pthread_mutex_t wmu; /* one writer at a time */
};

int cli_agent_probe(const char *path)
{
    struct sockaddr_un sa;
    int fd, ok;
    if (un_addr(path, &sa) != 0)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok ? 0 : -1;
}

/* The reader: the open reply, then the node's frames, to the callbacks. */
static void *client_main(void *arg)
{
    cli_agent_conn *c = arg;
    cli_agent_frames in = {0};
    nt_frame f;
    char err[256], peer[NT_MAX_NAME + 1], why[512];
    int opened = 0;
    why[0] = '\0';
    for (;;) {
        int r = cli_agent_frame_next(c->fd, &in, &f, err, sizeof err);
        if (r <= 0) {
            if (r < 0)
                snprintf(why, sizeof why, "agent connection: %s", err);
            else
                snprintf(why, sizeof why, "the agent closed the connection");
            break;
        }
        int m = cli_agent_parse_reply(&f, peer, sizeof peer, why, sizeof why);
        if (m == 0)
            break; /* down: why says it */
        if (m == 1 && !opened) {
            opened = 1;
            if (c->cb->on_open(c->user, NULL, peer, c->role) != 0) {
                snprintf(why, sizeof why, "refused");
                break;
            }
            continue;
        }
        if (opened && f.type == NT_CTL_REPLY)
            c->cb->on_frame(c->user, NULL, &f);
    }
    c->cb->on_close(c->user, NULL, why);
    free(in.buf);
    return NULL;
}

int cli_agent_connect(const char *path, const char *addr, int role,
                      const nt_callbacks *cb, void *user,
                      cli_agent_conn **out, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    cli_agent_conn *c;
    nt_buf b;
    *out = NULL;
    if (un_addr(path, &sa) != 0) {
        snprintf(err, errlen, "agent socket path '%s' is too long", path);
        return -1;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->role = role;
    c->cb = cb;
    c->user = user;
    pthread_mutex_init(&c->wmu, NULL);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(err, errlen, "cannot connect to the agent at %s: %s", path,
                 strerror(errno));
        goto fail;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "open", addr);
    cJSON_AddNumberToObject(o, "role", role);
    nt_buf_init(&b, 0);
    nt_status s = cli_agent_put_json(&b, NT_CTL, 0, o);
    cJSON_Delete(o);
    if (s != NT_OK || write_all(c->fd, b.data, b.len) != 0) {
        snprintf(err, errlen, "cannot talk to the agent at %s: %s", path,
                 s != NT_OK ? nt_status_msg(s) : strerror(errno));
        nt_buf_free(&b);
        goto fail;
    }
    nt_buf_free(&b);
    /* *out before the reader starts: its callbacks may send at once. */
    *out = c;
    c->th_started = 1;
    if (pthread_create(&c->th, NULL, client_main, c) != 0) {
        *out = NULL;
        snprintf(err, errlen, "cannot start a thread");
        goto fail;
    }
    return 0;
fail:
    if (c->fd >= 0)
        close(c->fd);
    pthread_mutex_destroy(&c->wmu);
    free(c);
    return -1;
}

int cli_agent_send_ctl(cli_agent_conn *c, uint32_t id, const char *json,
                       size_t json_len, const uint8_t *blob, size_t blob_len)
{
    nt_buf b;
    int r = -2;
    nt_buf_init(&b, 0);
    if (nt_put_ctl_head(&b, NT_CTL, id, json, json_len, blob, blob_len) ==
        NT_OK) {
        pthread_mutex_lock(&c->wmu);
        r = write_all(c->fd, b.data, b.len) == 0 &&
                    (blob_len == 0 || write_all(c->fd, blob, blob_len) == 0)
                ? 0
                : -1;
        pthread_mutex_unlock(&c->wmu);
    }
    nt_buf_free(&b);
    return r;
}

void cli_agent_close(cli_agent_conn *c)
{
    if (!c)
        return;
    shutdown(c->fd, SHUT_RDWR); /* the reader sees the end */
    if (c->th_started)
        pthread_join(c->th, NULL);
    close(c->fd);
    pthread_mutex_destroy(&c->wmu);
    free(c);
}

/* ------------------------------------------------------------------------ */
/* The agent. */

typedef struct ag_link ag_link;
typedef struct ag_client ag_client;

typedef struct agent {
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* a client thread ended */
    nt_loop *loop;
    nt_tls *tls;
    ag_link *links;
    ag_client *clients;
    unsigned nthreads;       /* client threads running */
    struct ag_route {        /* a request in flight: agent id -> client's */
        uint32_t aid, id;
        ag_client *cl;
    } *routes;
    size_t nroutes, caproutes;
    uint32_t next_aid;
    uint64_t requests;
    int quiet;
} agent;

enum { L_CONNECTING, L_OPEN, L_DOWN };

struct ag_link {            /* a kept connection to one node */
    agent *ag;
    char addr[256];
    int role;
    nt_conn *conn;
    int state;
    int resumed;
    char peer[NT_MAX_NAME + 1];
    char why[256];          /* why it is down */
    char refused[256];      /* a REFUSE's reason, for link_close */
    ag_link *next;
};

struct ag_client {          /* one command's socket */
    agent *ag;
    int fd;
    ag_link *link;          /* after its open request */
    int told;               /* the open reply went out */
    int dead;               /* shut down: drop everything for it */
    ag_client *next;
};


static void alog(const agent *ag, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void alog(const agent *ag, const char *fmt, ...)
{
    va_list ap;
    char line[1024];
    if (ag->quiet)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "isoflow: agent: %s\n", line);
}

/* Sends frame bytes to a client without blocking the caller (the link's
 * thread): a client whose socket is full is shut down.  Under mu. */
static void client_send(ag_client *cl, const uint8_t *data, size_t len)
{
    if (cl->dead)
        return;
    while (len > 0) {
        ssize_t w = send(cl->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            cl->dead = 1;
            shutdown(cl->fd, SHUT_RDWR);
            return;
        }
        data += w;
        len -= (size_t)w;
    }
}

/* An agent message (id 0) to a client; `down` set: then shut down.  Under
 * mu. */
static void client_tell(ag_client *cl, const char *down)
{
    nt_buf b;
    cJSON *o = cJSON_CreateObject();
    if (down) {
        cJSON_AddStringToObject(o, "down", down);
    } else {
        cJSON_AddTrueToObject(o, "open");
        cJSON_AddStringToObject(o, "peer", cl->link->peer);
        cJSON_AddNumberToObject(o, "resumed", cl->link->resumed);
    }
    nt_buf_init(&b, 0);
    if (cli_agent_put_json(&b, NT_CTL_REPLY, 0, o) == NT_OK)
        client_send(cl, b.data, b.len);
    nt_buf_free(&b);
    cJSON_Delete(o);
    if (down && !cl->dead) {
        cl->dead = 1;
        shutdown(cl->fd, SHUT_RDWR);
    }
}

/* Forgets the routes of client cl (or every route when NULL).  Under mu. */
static void routes_drop(agent *ag, const ag_client *cl)
{
    size_t j = 0;
    for (size_t i = 0; i < ag->nroutes; i++)
        if (cl && ag->routes[i].cl != cl)
            ag->routes[j++] = ag->routes[i];
    ag->nroutes = j;
}

static int link_open(void *user, nt_conn *conn, const char *peer, int role)
{
    ag_link *l = user;
    agent *ag = l->ag;
    (void)role;
    pthread_mutex_lock(&ag->mu);
    if (l->conn == NULL)
        l->conn = conn; /* opened before nt_connect returned */
    l->state = L_OPEN;
    l->resumed = nt_conn_resumed(conn);
    l->why[0] = '\0';
    snprintf(l->peer, sizeof l->peer, "%s", peer);
    for (ag_client *cl = ag->clients; cl; cl = cl->next)
        if (cl->link == l && !cl->told && !cl->dead) {
            cl->told = 1;
            client_tell(cl, NULL);
        }
    pthread_mutex_unlock(&ag->mu);
    alog(ag, "connected to %s at %s%s", peer, l->addr,
         l->resumed ? " (TLS session resumed)" : "");
    return 0;
}

static void link_frame(void *user, nt_conn *conn, const nt_frame *f)
{
    ag_link *l = user;
    agent *ag = l->ag;
    uint32_t id;
    const char *json;
    size_t jl, bl;
    const uint8_t *blob;
    char err[256];
    (void)conn;
    if (f->type == NT_REFUSE) {
        pthread_mutex_lock(&ag->mu);
        if (nt_refuse_decode(f, l->refused, sizeof l->refused, err,
                             sizeof err) != NT_OK)
            snprintf(l->refused, sizeof l->refused, "refused");
        pthread_mutex_unlock(&ag->mu);
        return;
    }
    if (f->type != NT_CTL_REPLY ||
        nt_ctl_decode(f, &id, &json, &jl, &blob, &bl, err, sizeof err) !=
            NT_OK)
        return;
    pthread_mutex_lock(&ag->mu);
    for (size_t i = 0; i < ag->nroutes; i++) {
        struct ag_route *r = &ag->routes[i];
        if (r->aid != id)
            continue;
        if (r->cl->link == l) {
            nt_buf b;
            nt_buf_init(&b, 0);
            if (nt_put_ctl(&b, NT_CTL_REPLY, r->id, json, jl, blob, bl) ==
                NT_OK)
                client_send(r->cl, b.data, b.len);
            nt_buf_free(&b);
        }
        break;
    }
    pthread_mutex_unlock(&ag->mu);
}

static void link_close(void *user, nt_conn *conn, const char *reason)
{
    ag_link *l = user;
    agent *ag = l->ag;
    char why[sizeof l->why];
    (void)conn;
    pthread_mutex_lock(&ag->mu);
    int was_open = l->state == L_OPEN;
    l->state = L_DOWN;
    if (l->refused[0]) /* a REFUSE's reason says more */
        memcpy(l->why, l->refused, sizeof l->why);
    else
        snprintf(l->why, sizeof l->why, "%s", reason ? reason : "closed");
    l->refused[0] = '\0';
    memcpy(why, l->why, sizeof why);
    for (ag_client *cl = ag->clients; cl; cl = cl->next)
        if (cl->link == l && !cl->dead)
            client_tell(cl, why);
    pthread_mutex_unlock(&ag->mu);
    if (was_open)
        alog(ag, "lost %s at %s: %s (reconnecting)", l->peer, l->addr, why);
    else
        alog(ag, "cannot connect to %s: %s", l->addr, why);
}

static const nt_callbacks link_callbacks = {link_open, link_frame,
                                            link_close};

/* The link to (addr, role) for a new client: the kept one, or a fresh
 * attempt when there is none or the kept one is down (its own retries
 * back off up to 10 s; a command should not wait for them).  Under mu;
 * *stale: a link to close (outside mu) and free. */
static ag_link *link_get(agent *ag, const char *addr, int role,
                         ag_link **stale, char *err, size_t errlen)
{
    ag_link **pp, *l;
    *stale = NULL;
    for (pp = &ag->links; (l = *pp) != NULL; pp = &l->next)
        if (l->role == role && strcmp(l->addr, addr) == 0)
            break;
    if (l && l->state != L_DOWN)
        return l;
    if (l) { /* down: replaced below; no client is bound to it any more */
        *pp = l->next;
        for (ag_client *cl = ag->clients; cl; cl = cl->next)
            if (cl->link == l)
                cl->link = NULL;
        *stale = l;
    }
    l = calloc(1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    l->ag = ag;
    l->role = role;
    l->state = L_CONNECTING;
    snprintf(l->addr, sizeof l->addr, "%s", addr);
    l->next = ag->links;
    ag->links = l;
    pthread_mutex_unlock(&ag->mu);
    nt_conn *conn = NULL;
    nt_status s = nt_connect(ag->loop, ag->tls, addr, role, &link_callbacks,
                             l, &conn, err, errlen);
    pthread_mutex_lock(&ag->mu);
    if (s != NT_OK) {
        l->state = L_DOWN;
        snprintf(l->why, sizeof l->why, "%.250s", err);
        return NULL; /* replaced by the next request */
    }
    if (!l->conn)
        l->conn = conn;
    return l;
}

/* Ends a link link_get replaced (outside mu: nt_conn_close waits for the
 * loop thread, whose callbacks take mu). */
static void link_drop(ag_link *l)
{
    if (!l)
        return;
    if (l->conn)
        nt_conn_close(l->conn);
    free(l);
}

/* A client's "open" request: binds it to its link.  0, or -1 with err. */
static int client_open(ag_client *cl, const nt_frame *f, char *err,
                       size_t errlen)
{
    agent *ag = cl->ag;
    ag_link *stale = NULL;
    char addr[256];
    int role;
    if (cli_agent_parse_open(f, addr, sizeof addr, &role, err, errlen) != 0)
        return -1;
    pthread_mutex_lock(&ag->mu);
    ag_link *l = link_get(ag, addr, role, &stale, err, errlen);
    if (l) {
        cl->link = l;
        if (l->state == L_OPEN) {
            cl->told = 1;
            client_tell(cl, NULL);
        }
    }
    pthread_mutex_unlock(&ag->mu);
    link_drop(stale);
    return l ? 0 : -1;
}

/* A request from a client, to its node with an id of the agent's.  0, or
 * -1 with err (the client is closed). */
static int client_request(ag_client *cl, const nt_frame *f, char *err,
                          size_t errlen)
{
    agent *ag = cl->ag;
    nt_status s;
    uint32_t id;
    if (cli_agent_check_request(f, &id, err, errlen) != 0)
        return -1;
    pthread_mutex_lock(&ag->mu);
    if (!cl->link || cl->link->state != L_OPEN || !cl->told) {
        pthread_mutex_unlock(&ag->mu);
        snprintf(err, errlen, "a request before its link was open");
        return -1;
    }
    if (ag->nroutes == ag->caproutes) {
        size_t nc = ag->caproutes ? ag->caproutes * 2 : 64;
        struct ag_route *nr = realloc(ag->routes, nc * sizeof *nr);
        if (!nr) {
            pthread_mutex_unlock(&ag->mu);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        ag->routes = nr;
        ag->caproutes = nc;
    }
    if (++ag->next_aid == 0)
        ag->next_aid = 1;
    uint32_t aid = ag->next_aid;
    ag->routes[ag->nroutes++] = (struct ag_route){aid, id, cl};
    ag->requests++;
    nt_conn *conn = cl->link->conn;
    pthread_mutex_unlock(&ag->mu);
    /* Renumbered in place (the frame is in the reader's buffer): the id,
     * then the header's CRC of the payload; no copy of the module. */
    uint8_t *hdr = (uint8_t *)f->payload - NT_HEADER;
    uint8_t *pl = (uint8_t *)f->payload;
    uint32_t crc;
    pl[0] = (uint8_t)aid;
    pl[1] = (uint8_t)(aid >> 8);
    pl[2] = (uint8_t)(aid >> 16);
    pl[3] = (uint8_t)(aid >> 24);
    crc = nt_crc32(pl, f->len);
    hdr[8] = (uint8_t)crc;
    hdr[9] = (uint8_t)(crc >> 8);
    hdr[10] = (uint8_t)(crc >> 16);
    hdr[11] = (uint8_t)(crc >> 24);
    /* A full send queue drains: wait for it (a lost link answers
     * ECLOSED, and link_close tells the client). */
    for (int tries = 0;; tries++) {
        s = nt_conn_send(conn, hdr, NT_HEADER + (size_t)f->len);
        if (s != NT_EFULL || tries > 30000)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (s != NT_OK && s != NT_ECLOSED) {
        snprintf(err, errlen, "cannot send the request: %s",
                 nt_status_msg(s));
        return -1;
    }
    return 0;
}

/* One client's thread: its open request, then its requests, until it
 * closes or is shut down. */
static void *client_thread(void *arg)
{
    ag_client *cl = arg;
    agent *ag = cl->ag;
    cli_agent_frames in = {0};
    nt_frame f;
    char err[512];
    int r, first = 1;
    err[0] = '\0';
    while ((r = cli_agent_frame_next(cl->fd, &in, &f, err, sizeof err)) == 1) {
        int ok = first ? client_open(cl, &f, err, sizeof err)
                       : client_request(cl, &f, err, sizeof err);
        first = 0;
        if (ok != 0) {
            pthread_mutex_lock(&ag->mu);
            client_tell(cl, err);
            pthread_mutex_unlock(&ag->mu);
            alog(ag, "closing a command's connection: %s", err);
            break;
        }
    }
    if (r < 0 && !cl->dead)
        alog(ag, "closing a command's connection: %s", err);
    free(in.buf);
    pthread_mutex_lock(&ag->mu);
    routes_drop(ag, cl);
    for (ag_client **pp = &ag->clients; *pp; pp = &(*pp)->next)
        if (*pp == cl) {
            *pp = cl->next;
            break;
        }
    close(cl->fd);
    free(cl);
    ag->nthreads--;
    pthread_cond_broadcast(&ag->cv);
    pthread_mutex_unlock(&ag->mu);
    return NULL;
}

/* A new command on the socket: same user only. */
static void agent_accept(agent *ag, int lfd)
{
    struct ucred cr;
    socklen_t crlen = sizeof cr;
    pthread_attr_t at;
    pthread_t th;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) != 0 ||
        cr.uid != getuid()) {
        alog(ag, "refused a connection from uid %ld (only uid %ld may use "
             "this agent)", (long)cr.uid, (long)getuid());
        close(fd);
        return;
    }
    ag_client *cl = calloc(1, sizeof *cl);
    if (!cl) {
        close(fd);
        return;
    }
    cl->ag = ag;
    cl->fd = fd;
    pthread_mutex_lock(&ag->mu);
    cl->next = ag->clients;
    ag->clients = cl;
    ag->nthreads++;
    pthread_mutex_unlock(&ag->mu);
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &at, client_thread, cl) != 0) {
        pthread_mutex_lock(&ag->mu);
        ag->clients = cl->next;
        ag->nthreads--;
        pthread_mutex_unlock(&ag->mu);
        close(fd);
        free(cl);
    }
    pthread_attr_destroy(&at);
}

/* Binds the socket at path (mode 0600); a socket file nobody answers on
 * is replaced.  The fd, or -1 with the reason printed. */
static int agent_listen(const char *path)
{
    struct sockaddr_un sa;
    int fd;
    if (un_addr(path, &sa) != 0) {
        cli_errf("agent: socket path '%s' is too long (at most %zu bytes)",
                 path, sizeof sa.sun_path - 1);
        return -1;
    }
    if (cli_agent_probe(path) == 0) {
        cli_errf("agent: another agent is running on %s", path);
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            cli_errf("agent: %s exists and is not a socket", path);
            return -1;
        }
        unlink(path); /* left by an agent that was killed */
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    mode_t old = umask(077);
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    umask(old);
    if (ok && chmod(path, 0600) != 0) /* umask made it 0700 */
        ok = 0;
    if (!ok || listen(fd, 64) != 0) {
        cli_errf("agent: cannot listen on %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

void cli_cmd_agent_help(FILE *out)
{
    fprintf(out,
        "usage: isoflow agent [--certs DIR] [--as NAME] [--socket PATH]\n"
        "                     [--flow FILE.flow] [--quiet]\n\n"
        "Keeps an operator's connections to running nodes open, so that\n"
        "`isoflow deploy`, `rollback` and `versions` with the same --certs\n"
        "and --as go through it instead of starting TLS themselves: a\n"
        "deploy then spends no time on OpenSSL's start or a handshake.\n"
        "The commands find the agent on its socket by themselves (and work\n"
        "without it); `--no-agent` makes them connect directly.\n\n"
        "The agent connects to a node when a command first needs it (with\n"
        "--flow: to every listening node of the flow at once), then keeps\n"
        "the connection (reconnecting when the node restarts).  It\n"
        "logs each connection, runs until Ctrl-C or SIGTERM and removes its\n"
        "socket on the way out.\n\n"
        "options:\n"
        "  --certs DIR     ca.crt, NAME.crt, NAME.key (default ./certs)\n"
        "  --as NAME       the operator certificate (default operator)\n"
        "  --socket PATH   where to listen (default DIR/NAME.agent); the\n"
        "                  socket is mode 0600 and only processes of the\n"
        "                  agent's own user are served: whoever can use\n"
        "                  it acts as the operator\n"
        "  --flow FILE     connect at start to the flow's listening nodes\n"
        "                  (edge and cloud), not at their first command\n"
        "  --quiet         no log lines\n\n"
        "example:\n"
        "  isoflow agent --certs ops &\n"
        "  isoflow deploy --flow home.flow --node room-03 --stage co2 "
        "--certs ops co2.wasm\n");
}

int cli_cmd_agent(int argc, char **argv)
{
    const char *certs = "certs", *as = "operator", *sock = NULL;
    const char *flow = NULL;
    fl_graph *g = NULL;
    char path[256], ca[1024], crt[1024], key[1024], err[1024];
    agent ag;
    int lfd = -1, rc = CLI_EXIT_FAIL;
    memset(&ag, 0, sizeof ag);
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (cli_streq(o, "--help") || cli_streq(o, "-h")) {
            cli_cmd_agent_help(stdout);
            return CLI_EXIT_OK;
        }
        if (cli_streq(o, "--quiet")) {
            ag.quiet = 1;
            continue;
        }
        if (!cli_streq(o, "--certs") && !cli_streq(o, "--as") &&
            !cli_streq(o, "--socket") && !cli_streq(o, "--flow")) {
            cli_errf("agent: unknown option '%s' (see 'isoflow agent "
                     "--help')", o);
            return CLI_EXIT_USAGE;
        }
        if (!v) {
            cli_errf("agent: option %s needs a value", o);
            return CLI_EXIT_USAGE;
        }
        i++;
        if (cli_streq(o, "--certs"))
            certs = v;
        else if (cli_streq(o, "--as"))
            as = v;
        else if (cli_streq(o, "--flow"))
            flow = v;
        else
            sock = v;
    }
    if (flow) {
        fl_status fs = (fl_status)cli_load_topology(flow, &g, err, sizeof err);
        if (fs != FL_OK) {
            if (err[0])
                fprintf(stderr, "%s\n", err);
            return CLI_EXIT_FAIL;
        }
    }
    if (sock) {
        snprintf(path, sizeof path, "%s", sock);
    } else if (cli_agent_path(certs, as, path, sizeof path) != 0) {
        cli_errf("agent: the socket path %s/%s.agent is too long; give a "
                 "shorter one with --socket", certs, as);
        return CLI_EXIT_USAGE;
    }
    pthread_mutex_init(&ag.mu, NULL);
    pthread_cond_init(&ag.cv, NULL);
    snprintf(ca, sizeof ca, "%s/ca.crt", certs);
    snprintf(crt, sizeof crt, "%s/%s.crt", certs, as);
    snprintf(key, sizeof key, "%s/%s.key", certs, as);
    /* The identity is checked now (a full load, unlike a command's lazy
     * one): a wrong certificate is reported at start, not at a deploy. */
    if (nt_tls_new(ca, crt, key, &ag.tls, err, sizeof err) != NT_OK) {
        cli_errf("agent: cannot use the operator certificate %s: %s", crt,
                 err);
        goto out;
    }
    snprintf(ca, sizeof ca, "%s/sessions", certs);
    (void)nt_tls_session_cache(ag.tls, ca, err, sizeof err);
    if (nt_loop_new(&ag.loop, err, sizeof err) != NT_OK) {
        cli_errf("agent: cannot start the network loop: %s", err);
        goto out;
    }
    lfd = agent_listen(path);
    if (lfd < 0)
        goto out;

    cli_catch_stop(0, 1);
    alog(&ag, "listening on %s as %s (Ctrl-C to stop)", path, as);
    /* --flow: every listening node now (a failed attempt is logged and
     * retried by the link; a command kicks a fresh one). */
    for (uint32_t i = 0; g && i < fl_graph_place_count(g); i++) {
        fl_place p;
        ag_link *stale = NULL;
        if (fl_graph_place(g, i, &p) != FL_OK || !p.listen || p.group)
            continue;
        pthread_mutex_lock(&ag.mu);
        (void)link_get(&ag, p.listen,
                       strcmp(p.layer, "cloud") == 0 ? NT_ROLE_CLOUD
                                                     : NT_ROLE_EDGE,
                       &stale, err, sizeof err);
        pthread_mutex_unlock(&ag.mu);
        link_drop(stale); /* a place listed twice whose first try failed */
    }
    if (ag.quiet == 0)
        fflush(stderr);
    while (!cli_stop_requested) {
        struct pollfd p = {lfd, POLLIN, 0};
        if (poll(&p, 1, 200) > 0 && (p.revents & POLLIN))
            agent_accept(&ag, lfd);
    }
    alog(&ag, "stopping (%llu request%s relayed)",
         (unsigned long long)ag.requests, ag.requests == 1 ? "" : "s");
    rc = CLI_EXIT_OK;

out:
    if (lfd >= 0) {
        close(lfd);
        unlink(path);
    }
    /* Commands still connected are told and their threads ended. */
    pthread_mutex_lock(&ag.mu);
    for (ag_client *cl = ag.clients; cl; cl = cl->next)
        client_tell(cl, "the agent is stopping");
    while (ag.nthreads > 0)
        pthread_cond_wait(&ag.cv, &ag.mu);
    pthread_mutex_unlock(&ag.mu);
    if (ag.loop)
        nt_loop_free(ag.loop); /* closes every link */
    while (ag.links) {
        ag_link *l = ag.links;
        ag.links = l->next;
        free(l);
    }
    free(ag.routes);
    nt_tls_free(ag.tls);
    fl_graph_free(g);
    pthread_cond_destroy(&ag.cv);
    pthread_mutex_destroy(&ag.mu);
    return rc;
}
