/*
 * nd_loadgen.c - a scale experiment, not a test: opens many device links to
 * one edge node from ONE process (plaintext: the edge must run --insecure)
 * and sends each device's messages at a fixed rate, so that an edge can be
 * tried with thousands of connections on one machine (docs/NODES.md,
 * "Scale").  Usage:
 *   nd_loadgen FLOW HOST:PORT FIRST COUNT NAMEFMT STAGE RATE SECONDS
 * FLOW is the flow file (its hash goes into HELLO), NAMEFMT the devices'
 * printf pattern (one %d), STAGE the destination stage index, RATE messages
 * per second per device.  Prints how many links came up and messages went.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "net.h"

typedef struct dev {
    nt_conn *c;
    _Atomic int up;           /* WELCOME received */
    uint64_t seq;             /* link seq == origin seq here */
    uint32_t index;
} dev;

static _Atomic long g_up, g_refused;

static int on_open(void *user, nt_conn *c, const char *peer, int role)
{
    (void)user, (void)c, (void)peer, (void)role;
    return 0;
}

static void on_frame(void *user, nt_conn *c, const nt_frame *f)
{
    dev *d = user;
    (void)c;
    if (f->type == NT_WELCOME && !atomic_exchange(&d->up, 1))
        atomic_fetch_add(&g_up, 1);
    else if (f->type == NT_REFUSE)
        atomic_fetch_add(&g_refused, 1);
}

static void on_close(void *user, nt_conn *c, const char *reason)
{
    dev *d = user;
    (void)c, (void)reason;
    if (atomic_exchange(&d->up, 0))
        atomic_fetch_sub(&g_up, 1);
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

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    char err[256];
    nt_loop *loop;
    nt_callbacks cb = {on_open, on_frame, on_close};
    if (argc != 9) {
        fprintf(stderr, "usage: nd_loadgen FLOW HOST:PORT FIRST COUNT NAMEFMT "
                        "STAGE RATE SECONDS\n");
        return 2;
    }
    uint64_t hash = file_hash(argv[1]);
    uint32_t first = (uint32_t)strtoul(argv[3], NULL, 10);
    uint32_t count = (uint32_t)strtoul(argv[4], NULL, 10);
    uint16_t stage = (uint16_t)strtoul(argv[6], NULL, 10);
    double rate = strtod(argv[7], NULL);
    double secs = strtod(argv[8], NULL);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    dev *devs = calloc(count, sizeof *devs);
    if (!devs || nt_loop_new(&loop, err, sizeof err) != NT_OK) {
        fprintf(stderr, "nd_loadgen: %s\n", devs ? err : "out of memory");
        return 1;
    }
    nt_buf b;
    nt_buf_init(&b, 0);
    for (uint32_t i = 0; i < count; i++) {
        devs[i].index = first + i;
        if (nt_connect(loop, NULL, argv[2], NT_ROLE_EDGE, &cb, &devs[i],
                       &devs[i].c, err, sizeof err) != NT_OK) {
            fprintf(stderr, "nd_loadgen: connect %u: %s\n", i, err);
            return 1;
        }
    }
    /* HELLO once each link is open (on_open runs on the loop thread; the
     * HELLO is sent from here, retried until every link is up). */
    uint64_t t0 = now_ns(), sent = 0, hello_at = 0;
    uint64_t end = t0 + (uint64_t)(secs * 1e9);
    uint64_t period = rate > 0 ? (uint64_t)(1e9 / rate) : 0;
    uint32_t next = 0; /* round-robin position of the next message */
    uint64_t due = t0;
    while (now_ns() < end) {
        uint64_t now = now_ns();
        if (now >= hello_at) { /* (re)send HELLO to links not yet welcomed */
            for (uint32_t i = 0; i < count; i++) {
                if (atomic_load(&devs[i].up))
                    continue;
                nt_hello h;
                memset(&h, 0, sizeof h);
                h.role = NT_ROLE_DEVICE;
                snprintf(h.name, sizeof h.name, argv[5], (int)devs[i].index);
                h.flow_hash = hash;
                nt_buf_reset(&b);
                if (nt_put_hello(&b, NT_HELLO, &h) == NT_OK)
                    nt_conn_send(devs[i].c, b.data, b.len);
            }
            hello_at = now + 2000000000ull;
        }
        /* count * rate messages per second, spread evenly. */
        while (period && now >= due) {
            dev *d = &devs[next];
            next = (next + 1) % count;
            due += period / count ? period / count : 1;
            if (!atomic_load(&d->up))
                continue;
            uint8_t payload[3 + 7] = {0, 1, 0};
            memcpy(payload + 3, "{\"r\":1}", 7);
            nt_msg m;
            memset(&m, 0, sizeof m);
            m.seq = d->seq + 1;
            m.origin = d->index;
            m.origin_seq = d->seq + 1;
            m.ts_ns = (uint64_t)time(NULL) * 1000000000ull;
            m.stage = stage;
            m.data = payload;
            m.len = sizeof payload;
            nt_buf_reset(&b);
            if (nt_data_begin(&b) == NT_OK && nt_data_add(&b, &m) == NT_OK &&
                nt_data_end(&b) == NT_OK &&
                nt_conn_send(d->c, b.data, b.len) == NT_OK) {
                d->seq++;
                sent++;
            }
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    printf("nd_loadgen: %ld of %u links up, %ld refused, %llu messages sent "
           "in %.1f s\n", (long)atomic_load(&g_up), count,
           (long)atomic_load(&g_refused), (unsigned long long)sent,
           (double)(now_ns() - t0) / 1e9);
    nt_buf_free(&b);
    nt_loop_free(loop);
    free(devs);
    return 0;
}
