/*
 * fuzz_ctl.c - libFuzzer target for a node's control plane (rt_ctl.c): the
 * JSON of a CTL request and its blob, as an operator connection or the node
 * a device connects to would send them.  One runtime in node mode (an edge
 * running the home example's room_sensor and cleaner, no trusted keys) is
 * made on the first input; each input is split into JSON and blob
 * (input[0..1] = JSON length, little-endian), handed to fl__ctl_submit, and
 * must end in a final reply that is JSON holding "final": true within 5 s:
 * never a crash, a hang or a request left without an answer.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "rt_int.h"

#ifndef FUZZ_STAGES
#error "FUZZ_STAGES (the directory of the built home-example stages) is needed"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static fl_runtime *rt;
static fl_graph *graph;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int finals, bad;

/* Reply callback (control thread): counts final replies, checks JSON. */
static void on_reply(void *user, const char *json, size_t len)
{
    (void)user;
    cJSON *j = cJSON_ParseWithLength(json, len);
    pthread_mutex_lock(&mu);
    if (!j)
        bad = 1;
    else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "final")))
        finals++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    cJSON_Delete(j);
}

static void setup(void)
{
    static char state[] = "/tmp/isoflow-fuzz-ctl-XXXXXX";
    char text[1024], err[2048];
    fl_run_opts o;
    if (!mkdtemp(state))
        abort();
    snprintf(text, sizeof text,
             "node edge @edge\n"
             "stage src   @edge wasm \"%s/room_sensor.wasm\"\n"
             "stage clean @edge wasm \"%s/cleaner.wasm\"\n"
             "stage out   @edge null\n"
             "flow f: pull(src every 1s) ~> [clean, out]\n",
             FUZZ_STAGES, FUZZ_STAGES);
    if (fl_graph_parse("fuzz-ctl.flow", text, strlen(text), "/", 1, &graph,
                       err, sizeof err) != FL_OK) {
        fprintf(stderr, "fuzz_ctl: %s\n", err);
        abort();
    }
    fl_run_opts_default(&o);
    o.workers = 1;
    o.node = "edge";
    o.insecure = 1;
    o.state_dir = state;
    o.dead_letter = "/dev/null";
    if (fl_runtime_new(graph, &o, &rt, err, sizeof err) != FL_OK ||
        fl_runtime_start(rt) != FL_OK) {
        fprintf(stderr, "fuzz_ctl: %s\n", err);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!rt)
        setup();
    if (size < 2)
        return 0;
    size_t jl = (size_t)data[0] | (size_t)data[1] << 8;
    if (jl > size - 2)
        jl = size - 2;
    const char *json = (const char *)data + 2;
    const uint8_t *blob = data + 2 + jl;
    size_t bl = size - 2 - jl;

    pthread_mutex_lock(&mu);
    int before = finals;
    pthread_mutex_unlock(&mu);
    if (fl__ctl_submit(fl__rt_ctl(rt), json, jl, blob, bl, on_reply, NULL) !=
        FL_OK)
        return 0; /* refused at once (e.g. not UTF-8): nothing pending */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&mu);
    while (finals == before && !bad)
        if (pthread_cond_timedwait(&cv, &mu, &until) != 0)
            break;
    int answered = finals > before, broken = bad;
    pthread_mutex_unlock(&mu);
    if (!answered || broken)
        __builtin_trap(); /* no final reply within 5 s, or not JSON */
    return 0;
}
