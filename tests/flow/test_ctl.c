/*
 * test_ctl.c - unit tests of a node's control plane (src/flow/rt_ctl.c) and
 * of native live update: a runtime in node mode (node "edge", a demand
 * source, a swappable stage "mid" and an accounting sink, all local) takes
 * deploy / versions / rollback / status requests through
 * fl__ctl_submit; replies, store history, what the sink sees and a restart
 * on the same state directory are checked.  The second test swaps native
 * .so variants of tests/flow/stages/sw_stage.c in-process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>
#include <pthread.h>

#include "deploy.h"
#include "net.h"
#include "graph_fixture.h"
#include "rt_int.h"

/* ---- The sink's accounting. ------------------------------------------ */

static _Atomic uint64_t received, last_seq, bad_order, bad_count, last_n;
static _Atomic int64_t last_from, first_version, last_version;

static void reset(void)
{
    atomic_store(&received, 0);
    atomic_store(&last_seq, 0);
    atomic_store(&bad_order, 0);
    atomic_store(&bad_count, 0);
    atomic_store(&last_n, 0);
    atomic_store(&last_from, -100);
    atomic_store(&first_version, -100);
    atomic_store(&last_version, -100);
}

struct fl__inst {
    const if_host_api *api;
    void *ctx;
};

static fl_status d_create(const fl__stage *d, const if_host_api *api,
                          void *ctx, int32_t device, fl__inst **out,
                          char *err, size_t errlen)
{
    fl__inst *in = calloc(1, sizeof *in);
    (void)d, (void)device, (void)err, (void)errlen;
    if (!in)
        return FL_NOMEM;
    in->api = api;
    in->ctx = ctx;
    *out = in;
    return FL_OK;
}

static fl_status d_produce(fl__inst *in, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    in->api->emit(in->ctx, NULL, 0, "r", 1);
    return FL_OK;
}

/* "VERSION N FROM" from sw_stage: seqs in order, N one more each time. */
static fl_status d_process(fl__inst *in, const uint8_t *msg, size_t len,
                           char *err, size_t errlen)
{
    char buf[64];
    int v = 0, from = -1;
    unsigned n = 0;
    (void)err, (void)errlen;
    uint64_t seq = (uint64_t)in->api->meta(in->ctx, IF_META_SEQ);
    snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)msg);
    if (sscanf(buf, "%d %u %d", &v, &n, &from) != 3)
        return FL_STAGE;
    if (seq != atomic_load(&last_seq) + 1)
        atomic_fetch_add(&bad_order, 1);
    atomic_store(&last_seq, seq);
    if (n != atomic_load(&last_n) + 1)
        atomic_fetch_add(&bad_count, 1);
    atomic_store(&last_n, n);
    if (atomic_load(&received) == 0)
        atomic_store(&first_version, v);
    atomic_store(&last_from, from);
    atomic_store(&last_version, v);
    atomic_fetch_add(&received, 1);
    return FL_OK;
}

static void d_destroy(fl__inst *in) { free(in); }

static const fl__stage_ops d_ops = {"d", "test", "test", NULL, d_create,
                                    d_process, d_produce, NULL, d_destroy};

static const fl__stage_ops *find(const char *kind)
{
    return strcmp(kind, "d") == 0 ? &d_ops : fl__stage_ops_find(kind);
}

/* ---- Graph: src ~> mid ~> sink, all on node "edge". ------------------ */

static fl_graph *make_graph(const char *kind, const char *mid_path,
                            int node_mode)
{
    fl_graph *g = tg_graph_new("ctl-test.flow", 3);
    tg_add_stage(g, "src", FL__LAYER_EDGE, "d", NULL, 1);
    tg_add_stage(g, "mid", FL__LAYER_EDGE, kind, mid_path, 1)->need_caps =
        IF_CAP_PROCESS;
    tg_add_stage(g, "sink", FL__LAYER_EDGE, "d", NULL, 1);
    tg_chain(g);
    tg_demand_source(g, 0, 4, 1000000); /* 1000 msg/s */
    if (node_mode) {
        g->nodes = calloc(1, sizeof *g->nodes);
        assert_non_null(g->nodes);
        g->nodes[0].name = tg_sdup("edge");
        g->nodes[0].layer = FL__LAYER_EDGE;
        g->nodes[0].connect_idx = -1;
        g->nnodes = 1;
    }
    return g;
}

/* FNV-1a 64, the runtime's module hash (fl__code_hash). */
static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

static char tmp[256], dl_path[300], state[300], keys[300], trust[300];

static void rm_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static fl_runtime *start_rt(fl_graph *g, int node_mode)
{
    fl_run_opts o;
    fl_runtime *rt = NULL;
    char err[512];
    reset();
    fl_run_opts_default(&o);
    o.workers = 2;
    o.dead_letter = dl_path;
    if (node_mode) {
        o.node = "edge";
        o.insecure = 1;
        o.state_dir = state;
        o.trust = trust;
    }
    fl__rt_set_ops_lookup(find);
    fl_status s = fl_runtime_new(g, &o, &rt, err, sizeof err);
    if (s != FL_OK)
        fail_msg("fl_runtime_new: %s", err);
    assert_int_equal(fl_runtime_start(rt), FL_OK);
    return rt;
}

/* ---- Replies. ---------------------------------------------------------- */

#define MAXR 16
static pthread_mutex_t rmu = PTHREAD_MUTEX_INITIALIZER;
static cJSON *replies[MAXR];
static int nrep, got_final;

static void on_reply(void *user, const char *json, size_t len)
{
    (void)user;
    cJSON *j = cJSON_ParseWithLength(json, len);
    pthread_mutex_lock(&rmu);
    if (j && nrep < MAXR)
        replies[nrep++] = j;
    else
        cJSON_Delete(j);
    if (j && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "final")))
        got_final = 1;
    pthread_mutex_unlock(&rmu);
}

static void clear_replies(void)
{
    pthread_mutex_lock(&rmu);
    for (int i = 0; i < nrep; i++)
        cJSON_Delete(replies[i]);
    nrep = 0;
    got_final = 0;
    pthread_mutex_unlock(&rmu);
}

/* Submits a request and waits (10 s at most) for its final reply; returns
 * the number of replies. */
static int ask(fl_runtime *rt, const char *json, const uint8_t *blob,
               size_t blob_len)
{
    clear_replies();
    assert_int_equal(fl__ctl_submit(fl__rt_ctl(rt), json, strlen(json), blob,
                                    blob_len, on_reply, NULL),
                     FL_OK);
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&rmu);
        int f = got_final;
        pthread_mutex_unlock(&rmu);
        if (f)
            break;
        tg_sleep_ms(10);
    }
    pthread_mutex_lock(&rmu);
    int n = nrep;
    pthread_mutex_unlock(&rmu);
    assert_true(got_final);
    return n;
}

static const char *rstr(int i, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(replies[i], key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double rnum(int i, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(replies[i], key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* A deploy request's JSON with the signature text escaped by cJSON. */
static char *deploy_json(const char *stage, const char *sig, int watch_ms)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "op", "deploy");
    cJSON_AddStringToObject(o, "node", "edge");
    cJSON_AddStringToObject(o, "stage", stage);
    cJSON_AddStringToObject(o, "kind", "wasm");
    if (sig)
        cJSON_AddStringToObject(o, "sig", sig);
    cJSON_AddNumberToObject(o, "watch_ms", watch_ms);
    char *t = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return t;
}

static char *sign(const char *key, const uint8_t *m, size_t len,
                  const char *stage)
{
    static char out[DP_SIG_MAX + 1];
    size_t n = 0;
    char err[256], path[400];
    snprintf(path, sizeof path, "%s/%s.key", keys, key);
    if (dp_sign_bytes(path, m, len, stage, 0, out, sizeof out - 1, &n, err,
                      sizeof err) != DP_OK)
        fail_msg("sign: %s", err);
    out[n] = '\0';
    return out;
}

/* A deploy that must be rejected with exactly `reason`; the old code
 * keeps processing messages. */
static void expect_rejected(fl_runtime *rt, const uint8_t *m, size_t len,
                            const char *sig, const char *reason)
{
    char *j = deploy_json("mid", sig, 200);
    int n = ask(rt, j, m, len);
    cJSON_free(j);
    assert_int_equal(n, 1);
    assert_string_equal(rstr(0, "event"), "rejected");
    assert_string_equal(rstr(0, "reason"), reason);
    assert_string_equal(rstr(0, "node"), "edge");
    uint64_t before = atomic_load(&received);
    tg_sleep_ms(60);
    assert_true(atomic_load(&received) > before);
    assert_int_equal(atomic_load(&last_from), -1); /* still sw_v */
}

static int count_outcome(int i, const char *outcome)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(replies[i],
                                                        "versions");
    const cJSON *e;
    int n = 0;
    cJSON_ArrayForEach(e, arr)
    {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(e, "outcome");
        n += cJSON_IsString(o) && strcmp(o->valuestring, outcome) == 0;
    }
    return n;
}

/* ---- The control plane. ------------------------------------------------ */

static void test_deploy_cycle(void **state_)
{
    (void)state_;
    size_t lv, lm, lt, lb;
    uint8_t *v = tg_slurp(SW_DIR "/sw_v.wasm", &lv);
    uint8_t *mig = tg_slurp(SW_DIR "/sw_mig.wasm", &lm);
    uint8_t *trap = tg_slurp(SW_DIR "/sw_trap.wasm", &lt);
    uint8_t *bad = tg_slurp(SW_DIR "/sw_badinit.wasm", &lb);
    char key_id[DP_KEY_ID_HEX + 1], err[256], reason[128];
    fl_graph *g = make_graph("wasm", SW_DIR "/sw_v.wasm", 1);

    assert_int_equal(dp_key_gen(keys, "good", NULL, err, sizeof err), DP_OK);
    assert_int_equal(dp_key_gen(keys, "other", key_id, err, sizeof err),
                     DP_OK);
    fl_runtime *rt = start_rt(g, 1);
    tg_sleep_ms(50);
    assert_true(atomic_load(&received) > 0);

    /* Rejections: exact reasons, nothing changes. */
    expect_rejected(rt, mig, lm, NULL, "unsigned");
    {
        char *s = sign("good", mig, lm, "mid");
        uint8_t *t = malloc(lm);
        memcpy(t, mig, lm);
        t[lm / 2] ^= 1;
        expect_rejected(rt, t, lm, s, "tampered (SHA-256 mismatch)");
        free(t);
    }
    snprintf(reason, sizeof reason, "unknown key %s", key_id);
    expect_rejected(rt, mig, lm, sign("other", mig, lm, "mid"), reason);
    expect_rejected(rt, mig, lm, sign("good", mig, lm, "src"),
                    "signed for stage src, not mid");
    {
        static const uint8_t junk[] = {0, 'a', 's', 'm', 9, 9, 9, 9};
        char *j = deploy_json("mid", sign("good", junk, sizeof junk, "mid"),
                              0);
        assert_int_equal(ask(rt, j, junk, sizeof junk), 1);
        cJSON_free(j);
        assert_string_equal(rstr(0, "event"), "rejected");
        assert_int_equal(strncmp(rstr(0, "reason"), "invalid module: ", 16),
                         0);
    }

    /* Accepted: verified, swapped, first, healthy; the new code runs with
     * the kv state carried over. */
    char *j = deploy_json("mid", sign("good", mig, lm, "mid"), 300);
    int n = ask(rt, j, mig, lm);
    cJSON_free(j);
    assert_int_equal(n, 4);
    assert_string_equal(rstr(0, "event"), "verified");
    assert_int_equal(rnum(0, "version"), 1);
    assert_int_equal(rnum(0, "size"), (double)lm);
    assert_string_equal(rstr(0, "signer"), "good");
    assert_int_equal(strlen(rstr(0, "sha256")), 64);
    assert_string_equal(rstr(1, "event"), "swapped");
    assert_int_equal(rnum(1, "from_version"), 0);
    assert_int_equal(rnum(1, "instances"), 1);
    assert_string_equal(rstr(2, "event"), "first");
    assert_true(rnum(2, "ms") >= 0 && rnum(2, "ms") < 2000);
    assert_string_equal(rstr(3, "event"), "healthy");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(replies[3], "ok")));
    assert_true(rnum(3, "calls") > 0);
    assert_int_equal(atomic_load(&last_from), 1); /* migrate(from) ran */
    assert_int_equal(atomic_load(&bad_count), 0);
    assert_int_equal(atomic_load(&bad_order), 0);

    /* A trapping version: rolled back by the runtime, reported. */
    j = deploy_json("mid", sign("good", trap, lt, "mid"), 1000);
    n = ask(rt, j, trap, lt);
    cJSON_free(j);
    assert_int_equal(n, 4);
    assert_string_equal(rstr(0, "event"), "verified");
    assert_int_equal(rnum(0, "version"), 2);
    assert_string_equal(rstr(1, "event"), "swapped");
    assert_string_equal(rstr(2, "event"), "first");
    assert_string_equal(rstr(3, "event"), "rolled-back");
    assert_int_equal(rnum(3, "version"), 2);
    assert_int_equal(rnum(3, "active"), 1);
    assert_int_equal(strncmp(rstr(3, "reason"), "trap: ", 6), 0);
    assert_non_null(strstr(rstr(3, "reason"), "(1 trap within 1 message)"));
    tg_sleep_ms(50);
    uint64_t r0 = atomic_load(&received);
    tg_sleep_ms(50);
    assert_true(atomic_load(&received) > r0);
    assert_int_equal(atomic_load(&last_from), 1); /* back on version 1 */

    /* A failing init: nothing changes. */
    j = deploy_json("mid", sign("good", bad, lb, "mid"), 200);
    n = ask(rt, j, bad, lb);
    cJSON_free(j);
    assert_int_equal(n, 2);
    assert_string_equal(rstr(1, "event"), "failed-init");
    assert_non_null(strstr(rstr(1, "reason"), "stage_init returned -7"));
    assert_int_equal(rnum(1, "active"), 1);

    /* The history. */
    n = ask(rt, "{\"op\":\"versions\",\"node\":\"edge\",\"stage\":\"mid\"}",
            NULL, 0);
    assert_int_equal(n, 1);
    assert_string_equal(rstr(0, "event"), "versions");
    assert_int_equal(rnum(0, "active"), 1);
    assert_int_equal(count_outcome(0, "rejected"), 5);
    assert_int_equal(count_outcome(0, "rolled-back"), 1);
    assert_int_equal(count_outcome(0, "failed-init"), 1);
    assert_int_equal(count_outcome(0, "active"), 3); /* 1, 2, back to 1 */

    /* Rollback (default: the version before; 2 was rolled back, so the
     * flow file's module). */
    n = ask(rt, "{\"op\":\"rollback\",\"node\":\"edge\",\"stage\":\"mid\","
                "\"watch_ms\":200}", NULL, 0);
    assert_int_equal(n, 4);
    assert_string_equal(rstr(0, "event"), "verified");
    assert_int_equal(rnum(0, "version"), 0);
    assert_string_equal(rstr(3, "event"), "healthy");
    tg_sleep_ms(30);
    assert_int_equal(atomic_load(&last_version), 0); /* the flow file's */
    n = ask(rt, "{\"op\":\"status\",\"node\":\"edge\"}", NULL, 0);
    assert_int_equal(n, 1);
    {
        const cJSON *st = cJSON_GetArrayItem(
            cJSON_GetObjectItem(replies[0], "stages"), 0);
        assert_string_equal(cJSON_GetObjectItem(st, "stage")->valuestring,
                            "mid");
        assert_int_equal(cJSON_GetObjectItem(st, "version")->valuedouble, 0);
        assert_string_equal(cJSON_GetObjectItem(st, "kind")->valuestring,
                            "wasm");
    }
    /* Rollback to version 1 by number. */
    n = ask(rt, "{\"op\":\"rollback\",\"node\":\"edge\",\"stage\":\"mid\","
                "\"version\":1,\"watch_ms\":100}", NULL, 0);
    assert_string_equal(rstr(n - 1, "event"), "healthy");
    assert_int_equal(rnum(n - 1, "version"), 1);

    /* Errors. */
    assert_int_equal(ask(rt, "{\"op\":\"dance\",\"node\":\"edge\"}", NULL, 0),
                     1);
    assert_string_equal(rstr(0, "error"), "unknown op dance");
    ask(rt, "{\"op\":\"versions\",\"node\":\"edge\",\"stage\":\"zz\"}", NULL,
        0);
    assert_string_equal(rstr(0, "error"), "no stage zz on node edge");
    ask(rt, "{\"op\":\"versions\",\"node\":\"edge\",\"stage\":\"sink\"}",
        NULL, 0);
    assert_string_equal(rstr(0, "error"),
                        "stage sink is a d stage: only wasm and native "
                        "stages can be deployed");
    ask(rt, "{\"op\":", NULL, 0);
    assert_string_equal(rstr(0, "error"), "bad JSON in the request");
    ask(rt, "{\"op\":\"status\",\"node\":\"dev-9\"}", NULL, 0);
    assert_string_equal(rstr(0, "error"), "no node dev-9 connects to edge");

    /* A non-operator peer. */
    clear_replies();
    assert_int_equal(fl__ctl_submit_peer(fl__rt_ctl(rt), "dev-3",
                                         NT_ROLE_DEVICE, "{}", 2, on_reply,
                                         NULL),
                     FL_OK);
    assert_int_equal(nrep, 1);
    assert_string_equal(rstr(0, "error"),
                        "refused: only an operator may deploy (peer dev-3 "
                        "has role device)");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(replies[0], "ok")));

    /* Restart on the same state directory: version 1 from the first
     * message. */
    assert_int_equal(fl_runtime_stop(rt, 5000), FL_OK);
    fl_runtime_free(rt);
    rt = start_rt(g, 1);
    {
        uint32_t idx, ninst, ver = 0, gen = 0;
        const fl__stage *d;
        bool stopped;
        fl__swst *sw = NULL;
        assert_true(fl__rt_stage_info(rt, "mid", &idx, &d, &ninst, &stopped,
                                      &sw));
        fl__code *code = fl__swap_current(sw, &ver, &gen);
        assert_non_null(code); /* not the flow file's module */
        assert_int_equal(fl__code_hash(code), fnv1a(mig, lm));
        assert_int_equal(ver, 1);
        fl__code_release(code);
    }
    tg_sleep_ms(80);
    assert_true(atomic_load(&received) > 0);
    assert_int_equal(atomic_load(&first_version), 1);
    assert_int_equal(fl_runtime_stop(rt, 5000), FL_OK);
    fl_runtime_free(rt);
    clear_replies();
    tg_graph_free(g);
    free(v);
    free(mig);
    free(trap);
    free(bad);
}

/* ---- Native swap in-process. ------------------------------------------ */

static void test_native_swap(void **state_)
{
    (void)state_;
    size_t lm, lb;
    uint8_t *mig = tg_slurp(CTL_DIR "/ctl_mig.so", &lm);
    uint8_t *bad = tg_slurp(CTL_DIR "/ctl_badinit.so", &lb);
    fl_graph *g = make_graph("native", CTL_DIR "/ctl_v.so", 0);
    fl_runtime *rt = start_rt(g, 0);
    fl_swap_result r;
    fl_swap_status st;

    tg_sleep_ms(50);
    assert_int_equal(atomic_load(&last_from), -1);
    /* A failing init changes nothing (kv written by it is undone). */
    assert_int_equal(fl_runtime_swap(rt, "mid", bad, lb, 2, &r), FL_CHECK);
    assert_non_null(strstr(r.reason, "stage_init returned -7"));
    assert_int_equal(r.version, 1);
    /* Junk is refused before any pause. */
    assert_int_equal(fl_runtime_swap(rt, "mid", (const uint8_t *)"junk", 4,
                                     3, &r),
                     FL_CHECK);
    assert_non_null(strstr(r.reason, "cannot load"));
    /* The swap: between messages, kv carried, migrate(1) ran. */
    assert_int_equal(fl_runtime_swap(rt, "mid", mig, lm, 4, &r), FL_OK);
    assert_int_equal(r.instances, 1);
    tg_sleep_ms(60);
    assert_int_equal(atomic_load(&last_from), 1);
    assert_int_equal(atomic_load(&last_version), 4);
    assert_int_equal(fl_runtime_swap_status(rt, "mid", &st), FL_OK);
    assert_int_equal(st.version, 4);
    assert_true(st.first_call_ns >= st.switch_ns && st.switch_ns > 0);
    /* And back to the declared file's copy as a later version. */
    size_t lv;
    uint8_t *v = tg_slurp(CTL_DIR "/ctl_v.so", &lv);
    assert_int_equal(fl_runtime_swap(rt, "mid", v, lv, 5, &r), FL_OK);
    tg_sleep_ms(40);
    assert_int_equal(fl_runtime_stop(rt, 5000), FL_OK);
    assert_int_equal(atomic_load(&last_version), 5);
    assert_int_equal(atomic_load(&bad_count), 0); /* kv counter never lost */
    assert_int_equal(atomic_load(&bad_order), 0);
    fl_run_stats t;
    fl_runtime_totals(rt, &t);
    assert_int_equal(atomic_load(&received), t.produced); /* none lost */
    fl_runtime_free(rt);
    tg_graph_free(g);
    free(v);
    free(mig);
    free(bad);
}

static int setup(void **state_)
{
    (void)state_;
    snprintf(tmp, sizeof tmp, "/tmp/isoflow_ctl_%ld", (long)getpid());
    rm_tree(tmp);
    snprintf(dl_path, sizeof dl_path, "%s/dl.jsonl", tmp);
    snprintf(state, sizeof state, "%s/state", tmp);
    snprintf(keys, sizeof keys, "%s/keys", tmp);
    snprintf(trust, sizeof trust, "%s/keys/good.pub", tmp);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", tmp);
    return system(cmd);
}

static int teardown(void **state_)
{
    (void)state_;
    rm_tree(tmp);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deploy_cycle),
        cmocka_unit_test(test_native_swap),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
