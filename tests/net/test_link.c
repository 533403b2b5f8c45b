/*
 * test_link.c - integration tests of the network links (net.h: nt_loop,
 * nt_listen, nt_connect, nt_conn_send; net_int.h: tuning and log hook) on
 * loopback with certificates issued by nt_ca_issue: frames both ways over
 * TLS, the refusal matrix with a legitimate peer alive meanwhile, bad
 * frames, reconnection with backoff, heartbeats, back-pressure and
 * plaintext mode.  Also measures (prints, never asserts) the throughput of
 * 100-byte DATA messages over one TLS connection.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "net.h"
#include "net_int.h"

#define MSG_BYTES 100u
#define BATCH 100u

static char g_dir[256];

static const char *P(const char *rel)
{
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", g_dir, rel);
    return b;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------ */
/* Captured log lines. */

static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static char *g_log;
static size_t g_log_len, g_log_cap;

static void log_hook(void *user, const char *line)
{
    size_t n = strlen(line);
    (void)user;
    pthread_mutex_lock(&g_log_mu);
    if (g_log_len + n + 2 > g_log_cap) {
        size_t cap = g_log_cap ? g_log_cap * 2 : 65536;
        while (cap < g_log_len + n + 2)
            cap *= 2;
        g_log = realloc(g_log, cap);
        g_log_cap = cap;
    }
    memcpy(g_log + g_log_len, line, n);
    g_log_len += n;
    g_log[g_log_len++] = '\n';
    g_log[g_log_len] = '\0';
    pthread_mutex_unlock(&g_log_mu);
    if (getenv("LINK_TEST_VERBOSE"))
        fprintf(stderr, "[net] %s\n", line);
}

static void log_clear(void)
{
    pthread_mutex_lock(&g_log_mu);
    g_log_len = 0;
    if (g_log)
        g_log[0] = '\0';
    pthread_mutex_unlock(&g_log_mu);
}

/* Number of captured lines containing both a and b (b may be NULL). */
static int log_count(const char *a, const char *b)
{
    int n = 0;
    const char *p;
    pthread_mutex_lock(&g_log_mu);
    p = g_log;
    while (p && *p) {
        const char *e = strchr(p, '\n');
        char line[600];
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len >= sizeof line)
            len = sizeof line - 1;
        memcpy(line, p, len);
        line[len] = '\0';
        if (strstr(line, a) && (b == NULL || strstr(line, b)))
            n++;
        p = e ? e + 1 : p + len;
    }
    pthread_mutex_unlock(&g_log_mu);
    return n;
}

/* Waits up to ms for a log line containing a and b; prints the log when it
 * does not come. */
static int wait_log(const char *a, const char *b, unsigned ms)
{
    uint64_t end = now_ms() + ms;
    while (now_ms() < end) {
        if (log_count(a, b) > 0)
            return 1;
        sleep_ms(5);
    }
    pthread_mutex_lock(&g_log_mu);
    fprintf(stderr, "no log line with '%s' + '%s'; log:\n%s", a,
            b ? b : "", g_log ? g_log : "");
    pthread_mutex_unlock(&g_log_mu);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* One end of a link, as its callbacks see it. */

typedef struct side {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t opens, closes, frames, msgs, bad, refuses, byes, bytes;
    uint64_t last_seq;        /* of DATA messages, checked consecutive */
    nt_conn *conn;            /* the last opened connection */
    char peer[NT_MAX_NAME + 1];
    int role;
    char last_close[256];
    const char *refuse_name;  /* on_open refuses this peer */
    uint64_t t_first, t_last; /* ms of the first and last DATA message */
} side;

static void side_init(side *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
}

static void side_fini(side *s)
{
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
}

static int cb_open(void *user, nt_conn *c, const char *peer, int role)
{
    side *s = user;
    int refuse;
    pthread_mutex_lock(&s->mu);
    refuse = s->refuse_name && strcmp(peer, s->refuse_name) == 0;
    if (!refuse) {
        s->opens++;
        s->conn = c;
        snprintf(s->peer, sizeof s->peer, "%s", peer);
        s->role = role;
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return refuse ? -1 : 0;
}

static void cb_frame(void *user, nt_conn *c, const nt_frame *f)
{
    side *s = user;
    (void)c;
    pthread_mutex_lock(&s->mu);
    s->frames++;
    s->bytes += NT_HEADER + f->len;
    if (f->type == NT_REFUSE)
        s->refuses++;
    if (f->type == NT_BYE)
        s->byes++;
    if (f->type == NT_DATA) {
        size_t off = 0;
        nt_msg m;
        char err[128];
        nt_status st;
        while ((st = nt_data_next(f, &off, &m, err, sizeof err)) == NT_OK) {
            if (m.seq != s->last_seq + 1 || m.len != MSG_BYTES ||
                m.data[0] != (uint8_t)m.seq ||
                m.data[MSG_BYTES - 1] != (uint8_t)(m.seq >> 8) ||
                m.origin != 7 || m.topic_len != 3 ||
                memcmp(m.topic, "co2", 3) != 0)
                s->bad++;
            s->last_seq = m.seq;
            if (s->msgs++ == 0)
                s->t_first = now_ms();
        }
        if (st != NT_AGAIN)
            s->bad++;
        s->t_last = now_ms();
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void cb_close(void *user, nt_conn *c, const char *reason)
{
    side *s = user;
    (void)c;
    pthread_mutex_lock(&s->mu);
    s->closes++;
    snprintf(s->last_close, sizeof s->last_close, "%s", reason);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static const nt_callbacks g_cb = {cb_open, cb_frame, cb_close};

/* Waits up to ms until *field >= want (read under the side's mutex). */
static int wait_ge(side *s, const uint64_t *field, uint64_t want, unsigned ms)
{
    struct timespec dl;
    int ok;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->mu);
    while (*field < want)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) != 0)
            break;
    ok = *field >= want;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static uint64_t get(side *s, const uint64_t *field)
{
    uint64_t v;
    pthread_mutex_lock(&s->mu);
    v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* Appends one DATA frame of `count` messages with seq first.. to b. */
static void put_batch(nt_buf *b, uint64_t first, unsigned count)
{
    uint8_t data[MSG_BYTES];
    unsigned i;
    assert_int_equal(nt_data_begin(b), NT_OK);
    for (i = 0; i < count; i++) {
        nt_msg m;
        uint64_t seq = first + i;
        memset(data, 0x5a, sizeof data);
        data[0] = (uint8_t)seq;
        data[MSG_BYTES - 1] = (uint8_t)(seq >> 8);
        memset(&m, 0, sizeof m);
        m.seq = seq;
        m.origin = 7;
        m.origin_seq = seq;
        m.ts_ns = seq * 1000u;
        m.stage = 2;
        m.topic = "co2";
        m.topic_len = 3;
        m.len = MSG_BYTES;
        m.data = data;
        assert_int_equal(nt_data_add(b, &m), NT_OK);
    }
    assert_int_equal(nt_data_end(b), NT_OK);
}

/* Sends all of b, waiting while the connection says NT_EFULL. */
static void send_all(nt_conn *c, const nt_buf *b)
{
    nt_status st;
    uint64_t end = now_ms() + 20000;
    while ((st = nt_conn_send(c, b->data, b->len)) == NT_EFULL &&
           now_ms() < end)
        sleep_ms(1);
    assert_int_equal(st, NT_OK);
}

/* Sends `batches` DATA frames of BATCH messages (seq from first). */
static void send_msgs(nt_conn *c, uint64_t first, unsigned batches)
{
    nt_buf b;
    unsigned i;
    nt_buf_init(&b, 0);
    for (i = 0; i < batches; i++) {
        nt_buf_reset(&b);
        put_batch(&b, first + (uint64_t)i * BATCH, BATCH);
        send_all(c, &b);
    }
    nt_buf_free(&b);
}

/* ------------------------------------------------------------------------ */
/* Fixture: CA "main" with edge-1, dev-1, dev-2, cloud-1 and an expired
 * old-dev; CA "other" with dev-x (its own ca.crt/ca.key serve as a
 * self-signed certificate). */

static nt_tls *tls_of(const char *ca_dir, const char *name)
{
    char crt[600], key[600], err[300];
    nt_tls *t = NULL;
    snprintf(crt, sizeof crt, "%s/%s.crt", g_dir, name);
    snprintf(key, sizeof key, "%s/%s.key", g_dir, name);
    if (nt_tls_new(P(ca_dir), crt, key, &t, err, sizeof err) != NT_OK)
        fail_msg("nt_tls_new %s: %s", name, err);
    return t;
}

static int group_setup(void **state)
{
    char err[300];
    static const struct {
        const char *name;
        int role;
    } main_certs[] = {{"edge-1", NT_ROLE_EDGE},
                      {"dev-1", NT_ROLE_DEVICE},
                      {"dev-2", NT_ROLE_DEVICE},
                      {"cloud-1", NT_ROLE_CLOUD},
                      {"op-1", NT_ROLE_OPERATOR}};
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    snprintf(g_dir, sizeof g_dir, "/tmp/isoflow-link-XXXXXX");
    if (mkdtemp(g_dir) == NULL)
        return -1;
    if (nt_ca_init(P("main"), "main", err, sizeof err) != NT_OK ||
        nt_ca_init(P("other"), "other", err, sizeof err) != NT_OK) {
        fprintf(stderr, "ca init: %s\n", err);
        return -1;
    }
    for (size_t i = 0; i < sizeof main_certs / sizeof main_certs[0]; i++)
        if (nt_ca_issue(P("main"), main_certs[i].name, main_certs[i].role, 0,
                        0, g_dir, err, sizeof err) != NT_OK) {
            fprintf(stderr, "issue: %s\n", err);
            return -1;
        }
    if (nt_ca_issue(P("main"), "old-dev", NT_ROLE_DEVICE, 1, -30L * 86400,
                    g_dir, err, sizeof err) != NT_OK ||
        nt_ca_issue(P("other"), "dev-x", NT_ROLE_DEVICE, 0, 0, g_dir, err,
                    sizeof err) != NT_OK) {
        fprintf(stderr, "issue: %s\n", err);
        return -1;
    }
    nt__set_log(log_hook, NULL);
    return 0;
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            char sub[1024];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int group_teardown(void **state)
{
    (void)state;
    nt__set_log(NULL, NULL);
    rm_rf(g_dir);
    free(g_log);
    g_log = NULL;
    g_log_len = g_log_cap = 0;
    return 0;
}

static nt_loop *loop_new(void)
{
    nt_loop *l = NULL;
    char err[200];
    assert_int_equal(nt_loop_new(&l, err, sizeof err), NT_OK);
    return l;
}

static nt_listener *listen_on(nt_loop *l, nt_tls *tls, unsigned roles,
                              side *s)
{
    nt_listener *ls = NULL;
    char err[200];
    if (nt_listen(l, tls, "127.0.0.1:0", roles, &g_cb, s, &ls, err,
                  sizeof err) != NT_OK)
        fail_msg("listen: %s", err);
    assert_true(nt_listener_port(ls) > 0);
    return ls;
}

static nt_conn *connect_to(nt_loop *l, nt_tls *tls, int port, int role,
                           side *s)
{
    nt_conn *c = NULL;
    char addr[64], err[200];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    if (nt_connect(l, tls, addr, role, &g_cb, s, &c, err, sizeof err) !=
        NT_OK)
        fail_msg("connect: %s", err);
    return c;
}

/* ------------------------------------------------------------------------ */
/* Raw peers (blocking sockets in the test thread). */

static int raw_tcp(int port)
{
    struct sockaddr_in a;
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

typedef struct raw_tls {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    int hs;  /* SSL_connect's result */
} raw_tls;

/* A TLS 1.3 client trusting CA "main", presenting crt/key (or nothing). */
static void raw_tls_open(raw_tls *r, int port, const char *crt,
                         const char *key)
{
    r->fd = raw_tcp(port);
    r->ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(r->ctx);
    SSL_CTX_set_min_proto_version(r->ctx, TLS1_3_VERSION);
    assert_int_equal(SSL_CTX_load_verify_locations(r->ctx, P("main/ca.crt"),
                                                   NULL),
                     1);
    if (crt) {
        assert_int_equal(
            SSL_CTX_use_certificate_file(r->ctx, crt, SSL_FILETYPE_PEM), 1);
        assert_int_equal(
            SSL_CTX_use_PrivateKey_file(r->ctx, key, SSL_FILETYPE_PEM), 1);
    }
    r->ssl = SSL_new(r->ctx);
    SSL_set_fd(r->ssl, r->fd);
    r->hs = SSL_connect(r->ssl);
}

/* Reads until the server closes or fails us; returns the bytes read (into
 * buf, up to cap). */
static size_t raw_tls_drain(raw_tls *r, uint8_t *buf, size_t cap)
{
    size_t got = 0;
    for (;;) {
        uint8_t tmp[4096];
        int n = SSL_read(r->ssl, tmp, sizeof tmp);
        if (n <= 0)
            break;
        if (buf && got < cap) {
            size_t k = (size_t)n < cap - got ? (size_t)n : cap - got;
            memcpy(buf + got, tmp, k);
        }
        got += (size_t)n;
    }
    ERR_clear_error();
    return got;
}

static void raw_tls_close(raw_tls *r)
{
    SSL_free(r->ssl);
    SSL_CTX_free(r->ctx);
    close(r->fd);
    ERR_clear_error();
}

/* ------------------------------------------------------------------------ */
/* Tests. */

/* 100,000 DATA messages each way over one TLS link: all arrive, in order,
 * exact counts; identities and roles reported to on_open. */
static void test_tls_exchange(void **state)
{
    unsigned n_batches = 1000;
    const char *env = getenv("LINK_TEST_MSGS");
    nt_loop *ls_loop = loop_new(), *cl_loop = loop_new();
    nt_tls *edge = tls_of("main/ca.crt", "edge-1");
    nt_tls *dev = tls_of("main/ca.crt", "dev-1");
    side srv, cli;
    nt_listener *ls;
    nt_conn *c;
    uint64_t total, t0;
    double secs;
    (void)state;

    if (env && strtoul(env, NULL, 10) >= BATCH)
        n_batches = (unsigned)(strtoul(env, NULL, 10) / BATCH);
    total = (uint64_t)n_batches * BATCH;
    side_init(&srv);
    side_init(&cli);
    ls = listen_on(ls_loop, edge, 1u << NT_ROLE_DEVICE, &srv);
    c = connect_to(cl_loop, dev, nt_listener_port(ls), NT_ROLE_EDGE, &cli);
    assert_true(wait_ge(&cli, &cli.opens, 1, 5000));
    assert_true(wait_ge(&srv, &srv.opens, 1, 5000));
    assert_string_equal(cli.peer, "edge-1");
    assert_int_equal(cli.role, NT_ROLE_EDGE);
    assert_string_equal(srv.peer, "dev-1");
    assert_int_equal(srv.role, NT_ROLE_DEVICE);
    assert_string_equal(nt_conn_peer(c), "edge-1");

    /* Client -> server alone first (the measured direction). */
    t0 = now_ms();
    send_msgs(c, 1, n_batches);
    assert_true(wait_ge(&srv, &srv.msgs, total, 60000));
    secs = (double)(get(&srv, &srv.t_last) - t0) / 1000.0;
    printf("[ measure  ] TLS loopback: %llu DATA messages of %u bytes "
           "(%u per frame) in %.3f s: %.0f msg/s\n",
           (unsigned long long)total, MSG_BYTES, BATCH, secs,
           secs > 0 ? (double)total / secs : 0.0);
    /* Then both ways at once. */
    send_msgs(srv.conn, 1, n_batches);
    send_msgs(c, total + 1, n_batches);
    assert_true(wait_ge(&cli, &cli.msgs, total, 60000));
    assert_true(wait_ge(&srv, &srv.msgs, 2 * total, 60000));
    sleep_ms(50);
    assert_int_equal(get(&srv, &srv.msgs), 2 * total);
    assert_int_equal(get(&srv, &srv.last_seq), 2 * total);
    assert_int_equal(get(&srv, &srv.bad), 0);
    assert_int_equal(get(&cli, &cli.msgs), total);
    assert_int_equal(get(&cli, &cli.last_seq), total);
    assert_int_equal(get(&cli, &cli.bad), 0);
    assert_int_equal(get(&cli, &cli.closes), 0);
    assert_int_equal(get(&srv, &srv.closes), 0);

    /* A closed outgoing connection says NT_ECLOSED... from its handle's
     * point of view nothing is usable after close; the server notices. */
    nt_conn_close(c);
    assert_true(wait_ge(&srv, &srv.closes, 1, 5000));
    assert_int_equal(get(&cli, &cli.closes), 0); /* not after nt_conn_close */
    nt_loop_free(cl_loop);
    nt_loop_free(ls_loop);
    nt_tls_free(edge);
    nt_tls_free(dev);
    side_fini(&srv);
    side_fini(&cli);
}

/* One operator connection to port: opens, gets a frame from the server
 * (which carries the ticket), closes.  Returns whether both ends saw a
 * resumed session (asserting they agree). */
static int operator_round(nt_tls *op, int port, side *srv)
{
    nt_loop *cl = loop_new();
    side cli;
    uint64_t opens = get(srv, &srv->opens), msgs;
    int resumed;
    side_init(&cli);
    nt_conn *c = connect_to(cl, op, port, NT_ROLE_EDGE, &cli);
    assert_true(wait_ge(&cli, &cli.opens, 1, 5000));
    assert_true(wait_ge(srv, &srv->opens, opens + 1, 5000));
    pthread_mutex_lock(&srv->mu);
    nt_conn *sc = srv->conn;
    assert_string_equal(srv->peer, "op-1");
    assert_int_equal(srv->role, NT_ROLE_OPERATOR);
    pthread_mutex_unlock(&srv->mu);
    resumed = nt_conn_resumed(c);
    assert_int_equal(nt_conn_resumed(sc), resumed);
    msgs = get(&cli, &cli.msgs);
    send_msgs(sc, 1, 1);
    assert_true(wait_ge(&cli, &cli.msgs, msgs + BATCH, 5000));
    sleep_ms(20); /* the ticket came before the frame: cached by now */
    nt_conn_close(c);
    nt_loop_free(cl);
    side_fini(&cli);
    return resumed;
}

/* The lazy context of certificate `crt` and key `key` (file names). */
static nt_tls *lazy_of(const char *crt, const char *key)
{
    char c[600], k[600], err[300];
    nt_tls *t = NULL;
    snprintf(c, sizeof c, "%s/%s.crt", g_dir, crt);
    snprintf(k, sizeof k, "%s/%s.key", g_dir, key);
    if (nt_tls_new_lazy(P("main/ca.crt"), c, k, &t, err, sizeof err) !=
        NT_OK)
        fail_msg("nt_tls_new_lazy %s: %s", crt, err);
    return t;
}

/* Waits up to 5 s for the one session file of port in dir (named after the
 * certificate: id-HASH@127.0.0.1_PORT.session); its path in out. */
static int session_file(const char *dir, int port, char *out, size_t cap)
{
    char suffix[64];
    uint64_t end = now_ms() + 5000;
    snprintf(suffix, sizeof suffix, "@127.0.0.1_%d.session", port);
    while (now_ms() < end) {
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            size_t n = strlen(e->d_name), m = strlen(suffix);
            if (n > m && strcmp(e->d_name + n - m, suffix) == 0 &&
                strncmp(e->d_name, "id-", 3) == 0) {
                snprintf(out, cap, "%s/%s", dir, e->d_name);
                closedir(d);
                return 1;
            }
        }
        if (d)
            closedir(d);
        sleep_ms(5);
    }
    return 0;
}

/* A lazy context (nt_tls_new_lazy): a missing file is an error at once; a
 * key that does not match its certificate only when a handshake needs it,
 * and then it is that connection's reason; nothing of it reaches the
 * server as an identity. */
static void test_lazy_identity(void **state)
{
    nt_loop *l = loop_new(), *cl = loop_new();
    nt_tls *edge = tls_of("main/ca.crt", "edge-1");
    nt_tls *bad = lazy_of("op-1", "dev-1");
    nt_tls *t = NULL;
    char err[300];
    side srv, cli;
    (void)state;

    assert_int_equal(nt_tls_new_lazy(P("main/ca.crt"), P("op-1.crt"),
                                     P("nope.key"), &t, err, sizeof err),
                     NT_EARG);
    assert_null(t);
    assert_non_null(strstr(err, "cannot read key '"));
    assert_non_null(strstr(err, "nope.key': No such file or directory"));
    side_init(&srv);
    side_init(&cli);
    nt_listener *ls = listen_on(l, edge, 1u << NT_ROLE_OPERATOR, &srv);
    connect_to(cl, bad, nt_listener_port(ls), NT_ROLE_EDGE, &cli);
    assert_true(wait_ge(&cli, &cli.closes, 1, 5000));
    pthread_mutex_lock(&cli.mu);
    assert_non_null(strstr(cli.last_close, "dev-1.key' does not match "
                                           "certificate '"));
    pthread_mutex_unlock(&cli.mu);
    assert_int_equal(get(&srv, &srv.opens), 0);
    assert_int_equal(get(&cli, &cli.opens), 0);
    nt_loop_free(cl);
    nt_loop_free(l);
    nt_tls_free(edge);
    nt_tls_free(bad);
    side_fini(&srv);
    side_fini(&cli);
}

/* Operator sessions (nt_tls_operator_tickets / nt_tls_session_cache): the
 * first connection is a full handshake and caches a ticket (mode 0600);
 * the next resumes with the operator's identity intact, also after the
 * node "restarts" with the same ticket key file; a damaged cache file
 * means a full handshake; a device gets no ticket. */
static void test_operator_sessions(void **state)
{
    nt_loop *l = loop_new();
    nt_tls *edge = tls_of("main/ca.crt", "edge-1");
    nt_tls *op = lazy_of("op-1", "op-1");
    nt_tls *dev = tls_of("main/ca.crt", "dev-1");
    char err[300], sess[700], addr[64];
    struct stat st;
    side srv;
    (void)state;

    side_init(&srv);
    assert_int_equal(nt_tls_operator_tickets(edge, P("tickets.key"), err,
                                             sizeof err), NT_OK);
    assert_int_equal(stat(P("tickets.key"), &st), 0);
    assert_int_equal(st.st_size, 80);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(nt_tls_session_cache(op, P("sess"), err, sizeof err),
                     NT_OK);
    assert_int_equal(stat(P("sess"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    nt_listener *ls = listen_on(l, edge, (1u << NT_ROLE_OPERATOR) |
                                             (1u << NT_ROLE_DEVICE), &srv);
    int port = nt_listener_port(ls);
    assert_int_equal(operator_round(op, port, &srv), 0);
    assert_true(session_file(P("sess"), port, sess, sizeof sess));
    assert_int_equal(stat(sess, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(operator_round(op, port, &srv), 1);
    assert_int_equal(operator_round(op, port, &srv), 1);

    /* The node restarts: a new context, the same key file, the same port. */
    nt_loop_free(l);
    nt_tls_free(edge);
    l = loop_new();
    edge = tls_of("main/ca.crt", "edge-1");
    assert_int_equal(nt_tls_operator_tickets(edge, P("tickets.key"), err,
                                             sizeof err), NT_OK);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    assert_int_equal(nt_listen(l, edge, addr, (1u << NT_ROLE_OPERATOR) |
                                                  (1u << NT_ROLE_DEVICE),
                               &g_cb, &srv, &ls, err, sizeof err),
                     NT_OK);
    assert_int_equal(operator_round(op, port, &srv), 1);

    /* A damaged cache file: a full handshake, then a good file again. */
    FILE *f = fopen(sess, "w");
    assert_non_null(f);
    fputs("-----BEGIN SSL SESSION PARAMETERS-----\nAAAA\n", f);
    fclose(f);
    assert_int_equal(operator_round(op, port, &srv), 0);
    assert_int_equal(operator_round(op, port, &srv), 1);

    /* A device with a cache gets no ticket from the node. */
    assert_int_equal(nt_tls_session_cache(dev, P("sess-dev"), err,
                                          sizeof err), NT_OK);
    {
        nt_loop *cl = loop_new();
        side cli;
        side_init(&cli);
        uint64_t opens = get(&srv, &srv.opens);
        nt_conn *c = connect_to(cl, dev, port, NT_ROLE_EDGE, &cli);
        assert_true(wait_ge(&srv, &srv.opens, opens + 1, 5000));
        send_msgs(srv.conn, 1, 1);
        assert_true(wait_ge(&cli, &cli.msgs, BATCH, 5000));
        sleep_ms(50);
        snprintf(sess, sizeof sess, "%s/sess-dev/dev-1@127.0.0.1_%d.session",
                 g_dir, port);
        assert_int_not_equal(stat(sess, &st), 0);
        nt_conn_close(c);
        nt_loop_free(cl);
        side_fini(&cli);
    }
    nt_loop_free(l);
    nt_tls_free(edge);
    nt_tls_free(op);
    nt_tls_free(dev);
    side_fini(&srv);
}

/* Keeps the legitimate link busy: one batch, and checks it arrived. */
static void ping_legit(nt_conn *c, side *srv, uint64_t *next)
{
    send_msgs(c, *next, 1);
    *next += BATCH;
    assert_true(wait_ge(srv, &srv->msgs, *next - 1, 5000));
}

/* The refusal matrix: no certificate, self-signed, another CA, expired,
 * wrong role (listener side), wrong role (connector side), refused by the
 * application; each refused with its logged reason while a legitimate peer
 * keeps exchanging frames. */
static void test_refusals(void **state)
{
    nt_loop *l = loop_new(), *cl = loop_new();
    nt_tls *edge = tls_of("main/ca.crt", "edge-1");
    nt_tls *dev = tls_of("main/ca.crt", "dev-1");
    nt_tls *dev2 = tls_of("main/ca.crt", "dev-2");
    side srv, legit, wrong;
    nt_listener *ls;
    nt_conn *c, *w;
    raw_tls r;
    int port;
    uint64_t next = 1;
    uint8_t buf[512];
    size_t n;
    char crt[600], key[600];
    static const struct {
        const char *crt, *key, *reason;
    } bad[] = {
        {NULL, NULL, "peer did not return a certificate"},
        {"other/ca.crt", "other/ca.key",
         "peer certificate refused: self-signed certificate"},
        {"dev-x.crt", "dev-x.key",
         "peer certificate refused: unable to get local issuer certificate"},
        {"old-dev.crt", "old-dev.key",
         "peer certificate refused: certificate has expired"},
    };
    (void)state;

    log_clear();
    side_init(&srv);
    side_init(&legit);
    side_init(&wrong);
    srv.refuse_name = "dev-2";
    ls = listen_on(l, edge, 1u << NT_ROLE_DEVICE, &srv);
    port = nt_listener_port(ls);
    c = connect_to(cl, dev, port, NT_ROLE_EDGE, &legit);
    assert_true(wait_ge(&srv, &srv.opens, 1, 5000));
    assert_int_equal(get(&legit, &legit.opens), 1); /* client opens first */
    ping_legit(c, &srv, &next);

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char who[64];
        snprintf(who, sizeof who, "refused 127.0.0.1:");
        snprintf(crt, sizeof crt, "%s/%s", g_dir, bad[i].crt ? bad[i].crt : "");
        snprintf(key, sizeof key, "%s/%s", g_dir, bad[i].key ? bad[i].key : "");
        raw_tls_open(&r, port, bad[i].crt ? crt : NULL,
                     bad[i].key ? key : NULL);
        /* TLS 1.3: the client finishes first; the server's verdict comes
         * as an alert, then the connection closes. */
        n = raw_tls_drain(&r, NULL, 0);
        assert_int_equal(n, 0);
        raw_tls_close(&r);
        assert_true(wait_log(who, bad[i].reason, 5000));
        ping_legit(c, &srv, &next);
    }

    /* Wrong role: a cloud certificate on a device-only listener.  The TLS
     * session exists, so the peer gets a REFUSE frame with the reason. */
    snprintf(crt, sizeof crt, "%s/cloud-1.crt", g_dir);
    snprintf(key, sizeof key, "%s/cloud-1.key", g_dir);
    raw_tls_open(&r, port, crt, key);
    assert_int_equal(r.hs, 1);
    n = raw_tls_drain(&r, buf, sizeof buf);
    raw_tls_close(&r);
    {
        nt_frame f;
        size_t flen;
        char err[128], reason[256];
        assert_int_equal(nt_frame_parse(buf, n, &f, &flen, err, sizeof err),
                         NT_OK);
        assert_int_equal(f.type, NT_REFUSE);
        assert_int_equal(flen, n);
        assert_int_equal(nt_refuse_decode(&f, reason, sizeof reason, err,
                                          sizeof err),
                         NT_OK);
        assert_string_equal(reason, "role cloud is not accepted here");
    }
    assert_true(wait_log("refused cloud-1 (127.0.0.1:",
                         "role cloud is not accepted here", 5000));
    ping_legit(c, &srv, &next);

    /* Refused by the application (on_open returns non-zero). */
    {
        side s2;
        nt_conn *c2;
        side_init(&s2);
        c2 = connect_to(cl, dev2, port, NT_ROLE_EDGE, &s2);
        assert_true(wait_log("refused dev-2 (127.0.0.1:",
                             "refused by the application", 5000));
        /* The client saw it open, then the REFUSE frame. */
        assert_true(wait_ge(&s2, &s2.refuses, 1, 5000));
        assert_true(wait_ge(&s2, &s2.closes, 1, 5000));
        pthread_mutex_lock(&s2.mu);
        assert_string_equal(s2.last_close,
                            "refused by peer: refused by the application");
        pthread_mutex_unlock(&s2.mu);
        nt_conn_close(c2);
        side_fini(&s2);
    }
    ping_legit(c, &srv, &next);

    /* Connector side: dev-1 expects a cloud but meets an edge. */
    w = connect_to(cl, dev, port, NT_ROLE_CLOUD, &wrong);
    assert_true(wait_log("refused edge-1 (127.0.0.1:",
                         "expected role cloud, peer has role edge", 5000));
    assert_true(wait_ge(&wrong, &wrong.closes, 1, 5000));
    assert_int_equal(get(&wrong, &wrong.opens), 0);
    nt_conn_close(w);
    ping_legit(c, &srv, &next);

    /* The legitimate link never dropped and every message arrived. */
    assert_int_equal(get(&legit, &legit.closes), 0);
    assert_int_equal(get(&legit, &legit.opens), 1);
    assert_int_equal(get(&srv, &srv.msgs), next - 1);
    assert_int_equal(get(&srv, &srv.bad), 0);

    nt_loop_free(cl);
    nt_loop_free(l);
    nt_tls_free(edge);
    nt_tls_free(dev);
    nt_tls_free(dev2);
    side_fini(&srv);
    side_fini(&legit);
    side_fini(&wrong);
}

/* Garbage after the handshake closes only that connection, with the
 * reason logged; the legitimate link is untouched. */
static void test_bad_frames(void **state)
{
    nt_loop *l = loop_new(), *cl = loop_new();
    nt_tls *edge = tls_of("main/ca.crt", "edge-1");
    nt_tls *dev = tls_of("main/ca.crt", "dev-1");
    side srv, legit;
    nt_listener *ls;
    nt_conn *c;
    raw_tls r;
    int port;
    uint64_t next = 1;
    char crt[600], key[600];
    (void)state;

    log_clear();
    side_init(&srv);
    side_init(&legit);
    ls = listen_on(l, edge, 1u << NT_ROLE_DEVICE, &srv);
    port = nt_listener_port(ls);
    c = connect_to(cl, dev, port, NT_ROLE_EDGE, &legit);
    assert_true(wait_ge(&srv, &srv.opens, 1, 5000));
    assert_int_equal(get(&legit, &legit.opens), 1); /* client opens first */
    ping_legit(c, &srv, &next);
    snprintf(crt, sizeof crt, "%s/dev-2.crt", g_dir);
    snprintf(key, sizeof key, "%s/dev-2.key", g_dir);

    /* A PING whose CRC is wrong. */
    {
        nt_buf b;
        nt_buf_init(&b, 0);
        assert_int_equal(nt_put_u64(&b, NT_PING, 42), NT_OK);
        b.data[8] ^= 0xff;
        raw_tls_open(&r, port, crt, key);
        assert_int_equal(r.hs, 1);
        assert_true(wait_ge(&srv, &srv.opens, 2, 5000));
        assert_int_equal(SSL_write(r.ssl, b.data, (int)b.len), (int)b.len);
        assert_true(wait_log("frame error from dev-2 (127.0.0.1:",
                             "CRC mismatch", 5000));
        assert_true(wait_ge(&srv, &srv.closes, 1, 5000));
        pthread_mutex_lock(&srv.mu);
        assert_string_equal(srv.last_close, "frame error: CRC mismatch");
        pthread_mutex_unlock(&srv.mu);
        raw_tls_drain(&r, NULL, 0);
        raw_tls_close(&r);
        nt_buf_free(&b);
    }
    ping_legit(c, &srv, &next);

    /* Plain garbage, split across two writes. */
    raw_tls_open(&r, port, crt, key);
    assert_int_equal(r.hs, 1);
    assert_true(wait_ge(&srv, &srv.opens, 3, 5000));
    assert_int_equal(SSL_write(r.ssl, "I", 1), 1);
    sleep_ms(20);
    assert_int_equal(SSL_write(r.ssl, "Xgarbage", 8), 8);
    assert_true(wait_log("frame error from dev-2 (127.0.0.1:",
                         "bad magic 0x4958", 5000));
    assert_true(wait_ge(&srv, &srv.closes, 2, 5000));
    raw_tls_drain(&r, NULL, 0);
    raw_tls_close(&r);

    /* An oversized length announced in a valid header start. */
    {
        uint8_t h[8] = {'I', 'F', NT_VERSION, NT_DATA, 0, 0, 0x20, 0};
        raw_tls_open(&r, port, crt, key);
        assert_int_equal(r.hs, 1);
        assert_true(wait_ge(&srv, &srv.opens, 4, 5000));
        assert_int_equal(SSL_write(r.ssl, h, 8), 8);
        assert_true(wait_log("frame error from dev-2", "exceeds", 5000));
        assert_true(wait_ge(&srv, &srv.closes, 3, 5000));
        raw_tls_drain(&r, NULL, 0);
        raw_tls_close(&r);
    }
    ping_legit(c, &srv, &next);
    assert_int_equal(get(&legit, &legit.closes), 0);
    assert_int_equal(get(&srv, &srv.bad), 0);

    nt_loop_free(cl);
    nt_loop_free(l);
    nt_tls_free(edge);
    nt_tls_free(dev);
    side_fini(&srv);
    side_fini(&legit);
}

/* The listener goes away (its loop stops) and comes back on the same port
 * after ~1 s: the connector retries with exponential backoff (not more
 * than a handful of attempts) and reconnects within the backoff bound. */
static void test_reconnect(void **state)
{
    nt_loop *l = loop_new(), *cl = loop_new();
    nt_tls *edge = tls_of("main/ca.crt", "edge-1");
    nt_tls *dev = tls_of("main/ca.crt", "dev-1");
    side srv, srv2, cli;
    nt_listener *ls;
    nt_conn *c;
    int port;
    uint64_t fails, t_back, t_open;
    char addr[64], err[200];
    uint64_t next = 1;
    (void)state;

    log_clear();
    side_init(&srv);
    side_init(&srv2);
    side_init(&cli);
    ls = listen_on(l, edge, 1u << NT_ROLE_DEVICE, &srv);
    port = nt_listener_port(ls);
    c = connect_to(cl, dev, port, NT_ROLE_EDGE, &cli);
    assert_true(wait_ge(&srv, &srv.opens, 1, 5000));
    assert_int_equal(get(&cli, &cli.opens), 1);
    ping_legit(c, &srv, &next); /* a frame: the link counts as working */
    nt_loop_free(l);
    assert_true(wait_ge(&cli, &cli.closes, 1, 5000));
    assert_int_equal(nt_conn_send(c, (const uint8_t *)"x", 1), NT_ECLOSED);
    sleep_ms(1000);
    /* Delays 100, 200, 400, 800 ms (+-20%): within 1 s, 3 or 4 failed
     * attempts (10 at a fixed 100 ms). */
    fails = get(&cli, &cli.closes) - 1;
    assert_true(fails >= 2 && fails <= 5);
    assert_int_equal(log_count("connection to 127.0.0.1:", "failed"), 1);

    l = loop_new();
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    assert_int_equal(nt_listen(l, edge, addr, 1u << NT_ROLE_DEVICE, &g_cb,
                               &srv2, &ls, err, sizeof err),
                     NT_OK);
    t_back = now_ms();
    assert_true(wait_ge(&cli, &cli.opens, 2, 5000));
    t_open = now_ms();
    printf("[ measure  ] reconnected %llu ms after the listener returned "
           "(%llu failed attempts while it was away)\n",
           (unsigned long long)(t_open - t_back),
           (unsigned long long)(get(&cli, &cli.closes) - 1));
    /* The pending delay is at most 800 ms * 1.2 (or 1.6 s * 1.2 when a
     * slow machine made it one more attempt), plus the handshake. */
    assert_true(t_open - t_back < 2500);
    {
        char want[64];
        snprintf(want, sizeof want, "after %llu failed attempts",
                 (unsigned long long)(get(&cli, &cli.closes) - 1));
        assert_true(wait_log("connected to 127.0.0.1:", want, 2000));
    }
    next = 1;
    ping_legit(c, &srv2, &next);
    assert_int_equal(get(&srv2, &srv2.bad), 0);

    nt_conn_close(c);
    nt_loop_free(cl);
    nt_loop_free(l);
    nt_tls_free(edge);
    nt_tls_free(dev);
    side_fini(&srv);
    side_fini(&srv2);
    side_fini(&cli);
}

/* Heartbeats: an idle legitimate link stays up (PINGs), a silent peer is
 * closed after the idle timeout, a peer that never handshakes too. */
static void test_heartbeat(void **state)
{
    nt_loop *l = loop_new(), *cl = loop_new();
    nt_tls *edge = tls_of("main/ca.crt", "edge-1");
    nt_tls *dev = tls_of("main/ca.crt", "dev-1");
    nt__link_tuning t;
    side srv, cli;
    nt_listener *ls;
    nt_conn *c;
    raw_tls r;
    int port, fd;
    uint64_t t0, dt;
    char crt[600], key[600], b;
    (void)state;

    log_clear();
    nt__link_tuning_default(&t);
    t.ping_ms = 100;
    t.idle_ms = 400;
    assert_int_equal(nt__loop_tune(l, &t), NT_OK);
    assert_int_equal(nt__loop_tune(cl, &t), NT_OK);
    side_init(&srv);
    side_init(&cli);
    ls = listen_on(l, edge, 1u << NT_ROLE_DEVICE, &srv);
    port = nt_listener_port(ls);
    c = connect_to(cl, dev, port, NT_ROLE_EDGE, &cli);
    assert_true(wait_ge(&srv, &srv.opens, 1, 5000));

    /* A silent TLS peer (valid certificate, never sends a byte). */
    snprintf(crt, sizeof crt, "%s/dev-2.crt", g_dir);
    snprintf(key, sizeof key, "%s/dev-2.key", g_dir);
    t0 = now_ms();
    raw_tls_open(&r, port, crt, key);
    assert_int_equal(r.hs, 1);
    assert_true(wait_ge(&srv, &srv.closes, 1, 5000));
    dt = now_ms() - t0;
    assert_true(dt >= 350 && dt < 2000);
    pthread_mutex_lock(&srv.mu);
    assert_non_null(strstr(srv.last_close, "heartbeat timeout"));
    pthread_mutex_unlock(&srv.mu);
    assert_true(wait_log("closing dev-2 (127.0.0.1:", "heartbeat timeout",
                         1000));
    raw_tls_drain(&r, NULL, 0);
    raw_tls_close(&r);

    /* A TCP peer that never starts the handshake. */
    fd = raw_tcp(port);
    assert_true(wait_log("refused 127.0.0.1:", "handshake timeout", 3000));
    assert_int_equal(recv(fd, &b, 1, 0), 0); /* closed on us */
    close(fd);

    /* Meanwhile the idle legitimate link lived on PINGs (~1 s idle). */
    sleep_ms(600);
    assert_int_equal(get(&cli, &cli.closes), 0);
    assert_int_equal(get(&srv, &srv.opens), 2);
    assert_int_equal(get(&srv, &srv.closes), 1);
    assert_int_equal(get(&srv, &srv.frames), 0); /* PINGs are not passed up */

    nt_conn_close(c);
    nt_loop_free(cl);
    nt_loop_free(l);
    nt_tls_free(edge);
    nt_tls_free(dev);
    side_fini(&srv);
    side_fini(&cli);
}

/* Back-pressure: a peer that does not read makes nt_conn_send say NT_EFULL
 * once the limit is queued; when it reads, it gets exactly the accepted
 * bytes and sending works again.  Plaintext, so the bytes can be counted. */
static void test_backpressure(void **state)
{
    nt_loop *l = loop_new();
    nt__link_tuning t;
    side srv;
    nt_listener *ls;
    nt_buf frame;
    nt_status st = NT_OK;
    uint64_t accepted = 0, got = 0, end;
    int fd;
    static uint8_t rbuf[1 << 16];
    (void)state;

    log_clear();
    nt__link_tuning_default(&t);
    t.sendq_max = 1u << 20;
    t.ping_ms = 60000;
    t.idle_ms = 60000;
    assert_int_equal(nt__loop_tune(l, &t), NT_OK);
    side_init(&srv);
    ls = listen_on(l, NULL, 0, &srv);
    assert_true(wait_log("WARNING: listening on 127.0.0.1:0", "plaintext",
                         1000));
    fd = raw_tcp(nt_listener_port(ls));
    assert_true(wait_ge(&srv, &srv.opens, 1, 5000));
    nt_buf_init(&frame, 0);
    put_batch(&frame, 1, 600); /* ~80 KiB */
    while (accepted < (64u << 20)) {
        st = nt_conn_send(srv.conn, frame.data, frame.len);
        if (st != NT_OK) {
            /* Writes complete as the kernel takes bytes: once its buffers
             * are full, the queue stays full. */
            sleep_ms(50);
            st = nt_conn_send(srv.conn, frame.data, frame.len);
            if (st != NT_OK)
                break;
        }
        accepted += frame.len;
    }
    assert_int_equal(st, NT_EFULL);
    printf("[ measure  ] back-pressure: NT_EFULL after %llu bytes "
           "(limit 1 MiB + kernel socket buffers)\n",
           (unsigned long long)accepted);
    assert_true(accepted >= (1u << 20));
    assert_true(accepted < (48u << 20));

    /* The peer reads everything it was promised, and no more. */
    end = now_ms() + 20000;
    while (got < accepted && now_ms() < end) {
        ssize_t n = recv(fd, rbuf, sizeof rbuf, 0);
        if (n <= 0)
            break;
        got += (uint64_t)n;
    }
    assert_int_equal(got, accepted);
    {
        struct timeval tv = {0, 200000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        assert_true(recv(fd, rbuf, sizeof rbuf, 0) < 0);
    }
    assert_int_equal(nt_conn_send(srv.conn, frame.data, frame.len), NT_OK);
    end = now_ms() + 5000;
    while (got < accepted + frame.len && now_ms() < end) {
        ssize_t n = recv(fd, rbuf, sizeof rbuf, 0);
        if (n > 0)
            got += (uint64_t)n;
    }
    assert_int_equal(got, accepted + frame.len);
    close(fd);
    assert_true(wait_ge(&srv, &srv.closes, 1, 5000));
    nt_buf_free(&frame);
    nt_loop_free(l);
    side_fini(&srv);
}

/* Plaintext mode: frames both ways, the peer named by its address. */
static void test_plaintext(void **state)
{
    nt_loop *l = loop_new(), *cl = loop_new();
    side srv, cli;
    nt_listener *ls;
    nt_conn *c;
    char want[64];
    (void)state;

    log_clear();
    side_init(&srv);
    side_init(&cli);
    ls = listen_on(l, NULL, 0, &srv);
    c = connect_to(cl, NULL, nt_listener_port(ls), 0, &cli);
    assert_true(wait_log("WARNING: connecting to 127.0.0.1:",
                         "plaintext (insecure)", 1000));
    assert_true(wait_ge(&cli, &cli.opens, 1, 5000));
    assert_true(wait_ge(&srv, &srv.opens, 1, 5000));
    snprintf(want, sizeof want, "127.0.0.1:%d", nt_listener_port(ls));
    assert_string_equal(cli.peer, want);
    assert_int_equal(cli.role, 0);
    assert_int_equal(srv.role, 0);
    send_msgs(c, 1, 50);
    send_msgs(srv.conn, 1, 50);
    assert_true(wait_ge(&srv, &srv.msgs, 5000, 10000));
    assert_true(wait_ge(&cli, &cli.msgs, 5000, 10000));
    /* nt_conn_send2: one frame given in two parts arrives whole, in
     * order with the rest (seq 5001..5100). */
    {
        nt_buf b;
        nt_buf_init(&b, 0);
        put_batch(&b, 5001, BATCH);
        assert_true(b.len > 100);
        assert_int_equal(nt_conn_send2(c, b.data, 100, b.data + 100,
                                       b.len - 100), NT_OK);
        assert_int_equal(nt_conn_send2(c, NULL, 1, NULL, 0), NT_EARG);
        assert_int_equal(nt_conn_send2(c, b.data, 0, NULL, 0), NT_OK);
        nt_buf_free(&b);
    }
    assert_true(wait_ge(&srv, &srv.msgs, 5000 + BATCH, 10000));
    assert_int_equal(get(&srv, &srv.bad), 0);
    assert_int_equal(get(&cli, &cli.bad), 0);
    /* BYE from the server: passed up, then the link closes (the client
     * reconnects by itself). */
    {
        nt_buf b;
        nt_buf_init(&b, 0);
        assert_int_equal(nt_put_bye(&b), NT_OK);
        assert_int_equal(nt_conn_send(srv.conn, b.data, b.len), NT_OK);
        nt_buf_free(&b);
    }
    assert_true(wait_ge(&cli, &cli.byes, 1, 5000));
    assert_true(wait_ge(&cli, &cli.closes, 1, 5000));
    pthread_mutex_lock(&cli.mu);
    assert_string_equal(cli.last_close, "closed by peer (BYE)");
    pthread_mutex_unlock(&cli.mu);
    assert_true(wait_ge(&cli, &cli.opens, 2, 5000));

    nt_conn_close(c);
    nt_loop_free(cl);
    nt_loop_free(l);
    side_fini(&srv);
    side_fini(&cli);
}

/* Argument errors and nt_loop_call. */
static void count_call(void *arg)
{
    side *s = arg;
    pthread_mutex_lock(&s->mu);
    s->frames++;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void test_api_edges(void **state)
{
    nt_loop *l = loop_new();
    nt_listener *ls = NULL;
    nt_conn *c = NULL;
    side s;
    char err[200];
    int i;
    (void)state;

    side_init(&s);
    for (i = 0; i < 100; i++)
        assert_int_equal(nt_loop_call(l, count_call, &s), NT_OK);
    assert_true(wait_ge(&s, &s.frames, 100, 5000));
    assert_int_equal(nt_listen(l, NULL, "no-port", 0, &g_cb, &s, &ls, err,
                               sizeof err),
                     NT_EARG);
    assert_non_null(strstr(err, "not host:port"));
    assert_null(ls);
    assert_int_equal(nt_connect(l, NULL, "127.0.0.1:", 0, &g_cb, &s, &c, err,
                                sizeof err),
                     NT_EARG);
    assert_null(c);
    /* A port already in use. */
    ls = listen_on(l, NULL, 0, &s);
    {
        char addr[64];
        nt_listener *ls2 = NULL;
        snprintf(addr, sizeof addr, "127.0.0.1:%d", nt_listener_port(ls));
        assert_int_equal(nt_listen(l, NULL, addr, 0, &g_cb, &s, &ls2, err,
                                   sizeof err),
                         NT_EIO);
        assert_non_null(strstr(err, "address already in use"));
    }
    /* An outgoing connection to nobody keeps trying until closed. */
    c = connect_to(l, NULL, 1, 0, &s);
    assert_true(wait_ge(&s, &s.closes, 2, 5000));
    pthread_mutex_lock(&s.mu);
    assert_string_equal(s.last_close, "connect failed: connection refused");
    pthread_mutex_unlock(&s.mu);
    assert_int_equal(nt_conn_send(c, (const uint8_t *)"x", 1), NT_ECLOSED);
    nt_conn_close(c);
    nt_loop_free(l);
    side_fini(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_edges),
        cmocka_unit_test(test_tls_exchange),
        cmocka_unit_test(test_operator_sessions),
        cmocka_unit_test(test_lazy_identity),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_bad_frames),
        cmocka_unit_test(test_reconnect),
        cmocka_unit_test(test_heartbeat),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_plaintext),
    };
    if (getenv("LINK_TEST_ONLY")) /* e.g. LINK_TEST_ONLY=test_reconnect */
        cmocka_set_test_filter(getenv("LINK_TEST_ONLY"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
