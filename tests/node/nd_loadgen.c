/*
 * nd_loadgen.c - a load generator for the scale experiment and the TLS
 * scale test: opens many device links to one edge node from ONE process,
 * over mutual TLS with one certificate per device issued in memory from
 * the CA (or plaintext against an --insecure edge), and sends each
 * device's messages at a fixed rate (docs/NODES.md, "Scale").  Usage:
 *   nd_loadgen [--ca DIR] [--from IP[,IP...]] [--pace N] [--drain S]
 *              [--report FILE] [--hold S]
 *              FLOW HOST:PORT FIRST COUNT NAMEFMT STAGE RATE SECONDS
 * FLOW is the flow file (its hash goes into HELLO), NAMEFMT the devices'
 * printf pattern (one %d; device i is named NAMEFMT(FIRST + i) and has
 * origin index FIRST + i), STAGE the destination stage index, RATE messages
 * per second per device.  --ca DIR: TLS, the CA in DIR (ca.crt, ca.key)
 * signs one certificate per device (CN = its name, OU "role:device", all
 * on one Ed25519 key pair); without it links are plaintext.  --from: local
 * addresses the sockets are bound to, round-robin (loopback has ~28,000
 * ports per source address).  --pace N: at most N links being set up at
 * once (default 256).  After SECONDS it stops sending and waits up to
 * --drain S (default 5) for the edge to acknowledge what it sent.  Prints
 * links up, refused, messages sent and acknowledged, the ACK frames
 * received, the time to connect every link, and one `nd_loadgen-json
 * {...}` line; --report FILE writes
 * "NAME SEQ ACKED" per device (SEQ: its last origin seq, ACKED: the edge's
 * last ACK); --hold S keeps the links open S seconds after that.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "net.h"

#define LG_MAX_FROM 64

typedef struct dev {
    nt_conn *c;
    nt_tls *id;                /* TLS identity (owned), or NULL */
    char name[NT_MAX_NAME + 1];
    _Atomic int up;            /* WELCOME received on the current link */
    _Atomic int settled;       /* its first attempt ended (up or not) */
    _Atomic int refused;       /* a REFUSE frame arrived (ever) */
    _Atomic unsigned gen;      /* WELCOMEs received */
    _Atomic uint64_t resume;   /* last_seq_seen of the latest WELCOME */
    _Atomic uint64_t acked;    /* highest ACK of the current link */
    unsigned gen_seen;         /* main thread: gen the seq is based on */
    uint64_t seq;              /* main thread: link seq == origin seq */
    uint64_t sent;             /* main thread: messages handed to the link */
    uint32_t index;
} dev;

static _Atomic long g_up, g_refused, g_settled;
static _Atomic uint64_t g_ackframes; /* ACK frames received (coalescing) */
static uint64_t g_hash;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void settle(dev *d)
{
    if (!atomic_exchange(&d->settled, 1))
        atomic_fetch_add(&g_settled, 1);
}

/* TLS (or TCP) is open: say HELLO at once (loop thread). */
static int on_open(void *user, nt_conn *c, const char *peer, int role)
{
    dev *d = user;
    nt_hello h;
    nt_buf b;
    (void)peer, (void)role;
    memset(&h, 0, sizeof h);
    h.role = NT_ROLE_DEVICE;
    snprintf(h.name, sizeof h.name, "%s", d->name);
    h.flow_hash = g_hash;
    nt_buf_init(&b, 0);
    if (nt_put_hello(&b, NT_HELLO, &h) == NT_OK)
        (void)nt_conn_send(c, b.data, b.len);
    nt_buf_free(&b);
    return 0;
}

static void on_frame(void *user, nt_conn *c, const nt_frame *f)
{
    dev *d = user;
    char err[128];
    (void)c;
    if (f->type == NT_WELCOME) {
        nt_hello h;
        if (nt_hello_decode(f, &h, err, sizeof err) != NT_OK)
            return;
        atomic_store(&d->acked, h.last_seq_seen);
        atomic_store(&d->resume, h.last_seq_seen);
        atomic_fetch_add(&d->gen, 1);
        if (!atomic_exchange(&d->up, 1))
            atomic_fetch_add(&g_up, 1);
        settle(d);
    } else if (f->type == NT_ACK) {
        uint64_t v;
        atomic_fetch_add(&g_ackframes, 1);
        if (nt_u64_decode(f, &v, err, sizeof err) == NT_OK &&
            v > atomic_load(&d->acked))
            atomic_store(&d->acked, v);
    } else if (f->type == NT_REFUSE) {
        if (!atomic_exchange(&d->refused, 1))
            atomic_fetch_add(&g_refused, 1);
        settle(d);
    }
}

static void on_close(void *user, nt_conn *c, const char *reason)
{
    dev *d = user;
    (void)c, (void)reason;
    if (atomic_exchange(&d->up, 0))
        atomic_fetch_sub(&g_up, 1);
    settle(d);
}

/* FNV-1a 64 of a file (as rt_net.c computes the flow hash). */
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

/* The whole file as a NUL-terminated string (caller frees) or NULL. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *s = NULL;
    long n;
    if (f == NULL)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
        fseek(f, 0, SEEK_SET) == 0 && (s = malloc((size_t)n + 1)) != NULL) {
        if (fread(s, 1, (size_t)n, f) != (size_t)n) {
            free(s);
            s = NULL;
        } else {
            s[n] = '\0';
        }
    }
    fclose(f);
    return s;
}

/* The in-memory CA: its certificate and key, and the devices' key pair. */
typedef struct issuer {
    X509 *ca;
    EVP_PKEY *cakey, *key;
    char *ca_pem, *key_pem;
    uint64_t serial;
} issuer;

/* The PEM text of a BIO's contents (caller frees). */
static char *bio_text(BIO *b)
{
    char *p = NULL, *s;
    long n = BIO_get_mem_data(b, &p);
    if (n < 0 || (s = malloc((size_t)n + 1)) == NULL)
        return NULL;
    memcpy(s, p, (size_t)n);
    s[n] = '\0';
    return s;
}

/* Loads DIR/ca.crt and DIR/ca.key and makes the devices' Ed25519 key pair.
 * Returns 0, or -1 with a message on stderr. */
static int issuer_init(issuer *is, const char *dir)
{
    char path[4096];
    FILE *f;
    BIO *b;
    EVP_PKEY_CTX *kc;

    memset(is, 0, sizeof *is);
    snprintf(path, sizeof path, "%s/ca.crt", dir);
    is->ca_pem = slurp(path);
    f = fopen(path, "r");
    if (f) {
        is->ca = PEM_read_X509(f, NULL, NULL, NULL);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/ca.key", dir);
    f = fopen(path, "r");
    if (f) {
        is->cakey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
    }
    if (is->ca_pem == NULL || is->ca == NULL || is->cakey == NULL) {
        fprintf(stderr, "nd_loadgen: cannot read the CA in '%s' (ca.crt, "
                        "ca.key)\n", dir);
        return -1;
    }
    kc = EVP_PKEY_CTX_new_from_name(NULL, "ED25519", NULL);
    if (kc == NULL || EVP_PKEY_keygen_init(kc) <= 0 ||
        EVP_PKEY_generate(kc, &is->key) <= 0) {
        EVP_PKEY_CTX_free(kc);
        fprintf(stderr, "nd_loadgen: cannot make an Ed25519 key\n");
        return -1;
    }
    EVP_PKEY_CTX_free(kc);
    b = BIO_new(BIO_s_mem());
    if (b == NULL ||
        !PEM_write_bio_PrivateKey(b, is->key, NULL, NULL, 0, NULL, NULL) ||
        (is->key_pem = bio_text(b)) == NULL) {
        BIO_free(b);
        fprintf(stderr, "nd_loadgen: cannot encode the key\n");
        return -1;
    }
    BIO_free(b);
    is->serial = (uint64_t)time(NULL) << 20;
    return 0;
}

static void issuer_free(issuer *is)
{
    X509_free(is->ca);
    EVP_PKEY_free(is->cakey);
    EVP_PKEY_free(is->key);
    free(is->ca_pem);
    free(is->key_pem);
}

static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    int ok = e != NULL && X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok;
}

/* A device certificate for `name` as PEM text (caller frees): subject
 * OU=role:device, CN=name (as `isoflow ca issue` makes them), valid from
 * an hour ago for 30 days, on the shared key, signed by the CA. */
static char *issue_pem(issuer *is, const char *name)
{
    X509 *x = X509_new();
    X509_NAME *subj = X509_NAME_new();
    X509V3_CTX v3;
    BIO *b = NULL;
    char *pem = NULL;
    if (x == NULL || subj == NULL || !X509_set_version(x, X509_VERSION_3) ||
        !ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), ++is->serial) ||
        !X509_NAME_add_entry_by_txt(subj, "OU", MBSTRING_UTF8,
                                    (const unsigned char *)"role:device", -1,
                                    -1, 0) ||
        !X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_UTF8,
                                    (const unsigned char *)name, -1, -1, 0) ||
        !X509_set_subject_name(x, subj) ||
        !X509_set_issuer_name(x, X509_get_subject_name(is->ca)) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), 30, 0, NULL) ||
        !X509_set_pubkey(x, is->key))
        goto out;
    X509V3_set_ctx(&v3, is->ca, x, NULL, NULL, 0);
    if (!add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") ||
        !add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") ||
        !add_ext(x, &v3, NID_ext_key_usage, "serverAuth,clientAuth") ||
        X509_sign(x, is->cakey, NULL) <= 0)
        goto out;
    b = BIO_new(BIO_s_mem());
    if (b && PEM_write_bio_X509(b, x))
        pem = bio_text(b);
out:
    BIO_free(b);
    X509_NAME_free(subj);
    X509_free(x);
    ERR_clear_error();
    return pem;
}

/* Raises the soft (and, when permitted, the hard) RLIMIT_NOFILE; logs the
 * new limit when it changed. */
static void raise_nofile(void)
{
    struct rlimit rl, want;
    rlim_t before;
    unsigned long long nr = 0;
    FILE *f = fopen("/proc/sys/fs/nr_open", "r");
    if (f) {
        if (fscanf(f, "%llu", &nr) != 1)
            nr = 0;
        fclose(f);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    before = rl.rlim_cur;
    if (nr > 0 && rl.rlim_max != RLIM_INFINITY && (rlim_t)nr > rl.rlim_max) {
        want.rlim_cur = want.rlim_max = (rlim_t)nr;
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl = want;
    }
    want.rlim_cur = want.rlim_max = rl.rlim_max;
    if (rl.rlim_cur < rl.rlim_max && setrlimit(RLIMIT_NOFILE, &want) == 0)
        rl = want;
    if (rl.rlim_cur != before)
        fprintf(stderr, "nd_loadgen: open files limit raised from %llu to "
                        "%llu\n", (unsigned long long)before,
                (unsigned long long)rl.rlim_cur);
}

/* Sends device d's next message (main thread). */
static void send_one(dev *d, uint16_t stage, nt_buf *b)
{
    uint8_t payload[3 + 7] = {0, 1, 0}; /* data, source index 0 + 1 */
    unsigned g = atomic_load(&d->gen);
    nt_msg m;
    if (!atomic_load(&d->up))
        return;
    if (g != d->gen_seen) { /* a new link: continue after its watermark */
        d->gen_seen = g;
        d->seq = atomic_load(&d->resume);
    }
    memcpy(payload + 3, "{\"r\":1}", 7);
    memset(&m, 0, sizeof m);
    m.seq = d->seq + 1;
    m.origin = d->index;
    m.origin_seq = d->seq + 1;
    m.ts_ns = (uint64_t)time(NULL) * 1000000000ull;
    m.stage = stage;
    m.data = payload;
    m.len = sizeof payload;
    nt_buf_reset(b);
    if (nt_data_begin(b) == NT_OK && nt_data_add(b, &m) == NT_OK &&
        nt_data_end(b) == NT_OK &&
        nt_conn_send(d->c, b->data, b->len) == NT_OK) {
        d->seq++;
        d->sent++;
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: nd_loadgen [--ca DIR] [--from IP[,IP...]] [--pace N] "
            "[--drain S] [--report FILE] [--hold S]\n"
            "                  FLOW HOST:PORT FIRST COUNT NAMEFMT STAGE RATE "
            "SECONDS\n");
}

int main(int argc, char **argv)
{
    char err[256];
    const char *ca_dir = NULL, *report = NULL;
    char *from_list = NULL, *from[LG_MAX_FROM];
    int nfrom = 0, ai = 1;
    long pace = 256;
    double drain = 5, hold = 0;
    nt_loop *loop;
    nt_callbacks cb = {on_open, on_frame, on_close};
    nt_tls *base = NULL;
    issuer is;
    int tls;

    while (ai < argc && strncmp(argv[ai], "--", 2) == 0) {
        if (ai + 1 >= argc) {
            usage();
            return 2;
        }
        if (strcmp(argv[ai], "--ca") == 0)
            ca_dir = argv[ai + 1];
        else if (strcmp(argv[ai], "--from") == 0)
            from_list = argv[ai + 1];
        else if (strcmp(argv[ai], "--pace") == 0)
            pace = strtol(argv[ai + 1], NULL, 10);
        else if (strcmp(argv[ai], "--drain") == 0)
            drain = strtod(argv[ai + 1], NULL);
        else if (strcmp(argv[ai], "--report") == 0)
            report = argv[ai + 1];
        else if (strcmp(argv[ai], "--hold") == 0)
            hold = strtod(argv[ai + 1], NULL);
        else {
            usage();
            return 2;
        }
        ai += 2;
    }
    if (argc - ai != 8 || pace < 1) {
        usage();
        return 2;
    }
    argv += ai - 1; /* argv[1..8] are the positional arguments */
    tls = ca_dir != NULL;
    for (char *p = from_list ? strtok(from_list, ",") : NULL;
         p && nfrom < LG_MAX_FROM; p = strtok(NULL, ","))
        from[nfrom++] = p;
    g_hash = file_hash(argv[1]);
    uint32_t first = (uint32_t)strtoul(argv[3], NULL, 10);
    uint32_t count = (uint32_t)strtoul(argv[4], NULL, 10);
    uint16_t stage = (uint16_t)strtoul(argv[6], NULL, 10);
    double rate = strtod(argv[7], NULL);
    double secs = strtod(argv[8], NULL);
    if (count == 0) {
        usage();
        return 2;
    }
    raise_nofile();
    if (tls && issuer_init(&is, ca_dir) != 0)
        return 1;
    dev *devs = calloc(count, sizeof *devs);
    if (!devs || nt_loop_new(&loop, err, sizeof err) != NT_OK) {
        fprintf(stderr, "nd_loadgen: %s\n", devs ? err : "out of memory");
        return 1;
    }
    for (uint32_t i = 0; i < count; i++) {
        devs[i].index = first + i;
        snprintf(devs[i].name, sizeof devs[i].name, argv[5],
                 (int)devs[i].index);
    }
    if (tls) {
        char *pem = issue_pem(&is, devs[0].name);
        if (pem == NULL || nt_tls_new_mem(is.ca_pem, pem, is.key_pem, &base,
                                          err, sizeof err) != NT_OK) {
            fprintf(stderr, "nd_loadgen: TLS context: %s\n",
                    pem ? err : "cannot issue a certificate");
            return 1;
        }
        free(pem);
    }

    nt_buf b;
    nt_buf_init(&b, 0);
    uint64_t t0 = now_ns(), sent = 0, t_all = 0, cpu_issue = 0;
    uint64_t end = t0 + (uint64_t)(secs * 1e9);
    uint64_t period = rate > 0 ? (uint64_t)(1e9 / rate) : 0;
    uint64_t step = period / count ? period / count : 1;
    uint32_t next = 0, issued = 0; /* next message; links started */
    uint64_t due = t0;
    while (now_ns() < end) {
        /* Start links while fewer than `pace` are being set up. */
        while (issued < count &&
               (long)issued - atomic_load(&g_settled) < pace) {
            dev *d = &devs[issued];
            const char *src = nfrom ? from[issued % (uint32_t)nfrom] : NULL;
            if (tls) {
                uint64_t c0 = now_ns();
                char *pem = issue_pem(&is, d->name);
                if (pem == NULL ||
                    nt_tls_new_identity(base, pem, NULL, &d->id, err,
                                        sizeof err) != NT_OK) {
                    fprintf(stderr, "nd_loadgen: identity %s: %s\n", d->name,
                            pem ? err : "cannot issue a certificate");
                    return 1;
                }
                free(pem);
                cpu_issue += now_ns() - c0;
            }
            if (nt_connect_from(loop, d->id, argv[2], src, NT_ROLE_EDGE, &cb,
                                d, &d->c, err, sizeof err) != NT_OK) {
                fprintf(stderr, "nd_loadgen: connect %u: %s\n", issued, err);
                return 1;
            }
            issued++;
        }
        if (!t_all && issued == count && atomic_load(&g_up) == (long)count)
            t_all = now_ns();
        uint64_t now = now_ns();
        /* count * rate messages per second, spread evenly. */
        while (period && now >= due) {
            dev *d = &devs[next];
            uint64_t before = d->sent;
            next = (next + 1) % count;
            due += step;
            if (next < issued)
                send_one(d, stage, &b);
            sent += d->sent - before;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    /* Stop sending; wait for the acknowledgements. */
    uint64_t dend = now_ns() + (uint64_t)(drain * 1e9), acked = 0;
    for (;;) {
        int behind = 0;
        acked = 0;
        for (uint32_t i = 0; i < issued; i++) {
            uint64_t a = atomic_load(&devs[i].acked);
            if (devs[i].sent && a < devs[i].seq && atomic_load(&devs[i].up))
                behind = 1;
            acked += a < devs[i].seq ? a : devs[i].seq;
        }
        if (!behind || now_ns() >= dend)
            break;
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    long up = atomic_load(&g_up), refused = atomic_load(&g_refused);
    double connect_s = t_all ? (double)(t_all - t0) / 1e9 : -1;
    printf("nd_loadgen: %ld of %u links up (%s), %ld refused, %llu messages "
           "sent, %llu acknowledged in %.1f s (%llu ACK frames); all links "
           "up after %.1f s\n",
           up, count, tls ? "TLS" : "plaintext", refused,
           (unsigned long long)sent, (unsigned long long)acked,
           (double)(now_ns() - t0) / 1e9,
           (unsigned long long)atomic_load(&g_ackframes), connect_s);
    printf("nd_loadgen-json {\"count\": %u, \"up\": %ld, \"refused\": %ld, "
           "\"sent\": %llu, \"acked\": %llu, \"connect_s\": %.2f, "
           "\"issue_cpu_s\": %.2f, \"tls\": %d}\n",
           count, up, refused, (unsigned long long)sent,
           (unsigned long long)acked, connect_s, (double)cpu_issue / 1e9,
           tls);
    if (report) {
        FILE *f = fopen(report, "w");
        if (f == NULL) {
            fprintf(stderr, "nd_loadgen: cannot write '%s': %s\n", report,
                    strerror(errno));
        } else {
            for (uint32_t i = 0; i < count; i++)
                fprintf(f, "%s %llu %llu\n", devs[i].name,
                        (unsigned long long)devs[i].seq,
                        (unsigned long long)atomic_load(&devs[i].acked));
            fclose(f);
        }
    }
    fflush(stdout);
    if (hold > 0) {
        struct timespec ts = {(time_t)hold,
                              (long)((hold - (double)(time_t)hold) * 1e9)};
        nanosleep(&ts, NULL);
    }
    nt_buf_free(&b);
    nt_loop_free(loop);
    for (uint32_t i = 0; i < count; i++)
        nt_tls_free(devs[i].id);
    nt_tls_free(base);
    if (tls)
        issuer_free(&is);
    free(devs);
    return 0;
}
