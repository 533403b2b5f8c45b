/*
 * test_flow_parse.c - cmocka tests of the .flow parser and checker
 * (parse.c, graph.c): good flows with their exact graphs (stages, links
 * with bidir flags, sources, devices, instances, paths, capabilities),
 * device count changes, the printed graph, and bad flows with their exact
 * error texts (position, echoed line, underline and expectation).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "flow_int.h"

static char g_err[4096];

/* Parses text named "t.flow" with basedir "/base" and no file checks. */
static fl_graph *parse_ok(const char *text)
{
    fl_graph *g = NULL;
    fl_status st = fl_graph_parse("t.flow", text, strlen(text), "/base", 0,
                                  &g, g_err, sizeof g_err);
    if (st != FL_OK)
        fprintf(stderr, "unexpected error:\n%s\n", g_err);
    assert_int_equal(st, FL_OK);
    assert_non_null(g);
    return g;
}

static int stage_idx(const fl_graph *g, const char *name)
{
    for (uint32_t i = 0; i < g->nstages; i++)
        if (strcmp(g->stages[i].name, name) == 0)
            return (int)i;
    fail_msg("no stage %s", name);
    return -1;
}

/* Asserts that the edge from -> to exists with the given bidir flag. */
static void assert_edge(const fl_graph *g, const char *from, const char *to,
                        int bidir)
{
    int f = stage_idx(g, from), t = stage_idx(g, to);
    for (uint32_t i = 0; i < g->nedges; i++)
        if (g->edges[i].from == (uint32_t)f && g->edges[i].to == (uint32_t)t) {
            assert_int_equal(g->edges[i].bidir, bidir);
            return;
        }
    fail_msg("no edge %s -> %s", from, to);
}

static const char home[] =
    "# The home CO2 system\n"
    "devices rooms \"room-%02d\" x 10\n"
    "devices hall   # one device named hall\n"
    "group gateways @edge \"gw-%d\" x 2\n"
    "\n"
    "stage sensor @rooms wasm \"stages/room_sensor.wasm\" every 1s "
    "actuator led config \"seed=42\"\n"
    "stage led    @rooms wasm \"stages/led.wasm\"\n"
    "stage beacon @device native \"/opt/beacon.so\"\n"
    "stage clean  @edge  wasm \"stages/clean.wasm\" fuel 5000 memory 16M\n"
    "stage agg    @gateways wasm \"stages/aggregate.wasm\"\n"
    "stage window @cloud wasm \"stages/window_advisor.wasm\"\n"
    "stage store  @cloud jsonl \"out/readings.jsonl\"\n"
    "stage tenth  @cloud sample 10\n"
    "stage hot    @cloud filter \"co2 > 1000\"\n"
    "\n"
    "flow home: push(sensor) <~> [clean, agg] <~> {window, store,\n"
    "                                               [tenth, hot]}\n"
    "flow beacons: pull(beacon every 10s) ~> store\n";

static void test_home_graph(void **state)
{
    fl_graph *g = parse_ok(home);
    const fl__stage *s;
    (void)state;

    assert_int_equal(g->ngroups, 3);
    assert_string_equal(g->groups[0].name, "rooms");
    assert_int_equal(g->groups[0].layer, FL__LAYER_DEVICE);
    assert_int_equal(g->groups[0].count, 10);
    assert_int_equal(g->groups[0].first_device, 0);
    assert_string_equal(g->groups[1].pattern, "hall");
    assert_int_equal(g->groups[1].count, 1);
    assert_int_equal(g->groups[1].first_device, 10);
    assert_int_equal(g->groups[2].layer, FL__LAYER_EDGE);
    assert_int_equal(g->groups[2].count, 2);
    assert_int_equal(g->ndevices, 11);
    assert_string_equal(g->device_names[0], "room-00");
    assert_string_equal(g->device_names[9], "room-09");
    assert_string_equal(g->device_names[10], "hall");

    assert_int_equal(g->nstages, 9);
    s = &g->stages[stage_idx(g, "sensor")];
    assert_int_equal(s->layer, FL__LAYER_DEVICE);
    assert_int_equal(s->group, 0);
    assert_string_equal(s->kind, "wasm");
    assert_string_equal(s->path, "/base/stages/room_sensor.wasm");
    assert_string_equal(s->config, "seed=42");
    assert_int_equal(s->every_ns, 1000000000ull);
    assert_string_equal(s->actuator, "led");
    assert_int_equal(s->actuator_idx, stage_idx(g, "led"));
    assert_int_equal(s->ninstances, 10);
    assert_int_equal(s->first_device, 0);
    assert_int_equal(s->need_caps, IF_CAP_PRODUCE);
    assert_int_equal(s->pos.line, 6);
    assert_int_equal(s->pos.col, 7);
    s = &g->stages[stage_idx(g, "led")];
    assert_int_equal(s->need_caps, IF_CAP_ACTUATION);
    assert_int_equal(s->actuator_idx, -1);
    s = &g->stages[stage_idx(g, "beacon")];
    assert_int_equal(s->group, -1);
    assert_int_equal(s->ninstances, 11); /* every device of every group */
    assert_string_equal(s->path, "/opt/beacon.so");
    s = &g->stages[stage_idx(g, "clean")];
    assert_int_equal(s->layer, FL__LAYER_EDGE);
    assert_int_equal(s->ninstances, 1);
    assert_int_equal(s->fuel, 5000);
    assert_int_equal(s->max_memory_pages, 256);
    assert_string_equal(s->config, "");
    assert_int_equal(s->need_caps, IF_CAP_PROCESS);
    s = &g->stages[stage_idx(g, "agg")];
    assert_int_equal(s->layer, FL__LAYER_EDGE);
    assert_int_equal(s->group, 2);
    assert_int_equal(s->ninstances, 1);
    s = &g->stages[stage_idx(g, "store")];
    assert_string_equal(s->path, "/base/out/readings.jsonl");
    assert_string_equal(s->config, "");
    s = &g->stages[stage_idx(g, "tenth")];
    assert_null(s->path);
    assert_string_equal(s->config, "10");
    assert_string_equal(g->stages[stage_idx(g, "hot")].config, "co2 > 1000");

    assert_int_equal(g->nedges, 7);
    assert_edge(g, "sensor", "clean", 1);
    assert_edge(g, "clean", "agg", 1);
    assert_edge(g, "agg", "window", 1);
    assert_edge(g, "agg", "store", 1);
    assert_edge(g, "agg", "tenth", 1);
    assert_edge(g, "tenth", "hot", 1);
    assert_edge(g, "beacon", "store", 0);
    fl_graph_free(g);
}

static void test_home_sources(void **state)
{
    fl_graph *g = parse_ok(home);
    (void)state;
    assert_int_equal(g->nflows, 2);
    assert_int_equal(g->nsources, 2);
    assert_string_equal(g->flows[0].name, "home");
    assert_int_equal(g->flows[0].source, 0);
    assert_int_equal(g->sources[0].stage, (uint32_t)stage_idx(g, "sensor"));
    assert_int_equal(g->sources[0].mode, FL__MODE_PUSH);
    assert_int_equal(g->sources[0].interval_ns, 1000000000ull); /* stage's */
    assert_int_equal(g->sources[0].flow, 0);
    assert_int_equal(g->sources[1].mode, FL__MODE_PULL);
    assert_int_equal(g->sources[1].interval_ns, 10000000000ull);
    assert_int_equal(g->sources[1].flow, 1);
    assert_int_equal(g->sources[1].pos.line, 18);
    assert_int_equal(g->sources[1].pos.col, 20);
    fl_graph_free(g);
}

static void test_home_print(void **state)
{
    fl_graph *g = parse_ok(home);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    (void)state;
    assert_non_null(f);
    fl_graph_print(g, f);
    fclose(f);
    assert_non_null(strstr(buf, "flow file t.flow\n"
                                "devices rooms: 10 (room-00 .. room-09)\n"
                                "devices hall: 1 (hall)\n"
                                "group gateways: edge layer, 2 nodes "
                                "(gw-0 .. gw-1)\n"
                                "\ndevice layer\n  stages\n"));
    assert_non_null(strstr(buf,
        "    sensor       wasm \"/base/stages/room_sensor.wasm\" config "
        "\"seed=42\"  10 instances (room-00 .. room-09)  every 1s  "
        "actuator led\n"));
    assert_non_null(strstr(buf, "    beacon       native \"/opt/beacon.so\""
                                "  11 instances (room-00 .. hall)\n"));
    assert_non_null(strstr(buf, "  sources\n    sensor       push every 1s"
                                "  (flow home)\n"));
    assert_non_null(strstr(buf, "  links\n    sensor <~> clean  (flow home)\n"
                                "    beacon ~> store  (flow beacons)\n"));
    assert_non_null(strstr(buf, "    clean        wasm \"/base/stages/"
                                "clean.wasm\"  1 instance  fuel 5000  "
                                "memory 16M\n"));
    assert_non_null(strstr(buf, "\ngroup gateways (edge layer)\n  stages\n"
                                "    agg "));
    assert_non_null(strstr(buf, "    tenth        sample config \"10\"  "
                                "1 instance\n"));
    free(buf);
    fl_graph_free(g);
}

/* Serial blocks link their elements bidirectionally; parallel blocks
 * expose every branch's entry and exit; nesting flattens. */
static void test_blocks(void **state)
{
    fl_graph *g = parse_ok(
        "stage s @edge log every 100ms\n"
        "stage a @edge log\nstage b @edge log\nstage c @edge log\n"
        "stage d @edge log\nstage e @edge log\nstage f @edge log\n"
        "stage h @cloud null\n"
        "flow x: push(s) ~> [a, {b, c}, d] ~> {e, [f, h]}\n");
    (void)state;
    assert_int_equal(g->nedges, 8);
    assert_edge(g, "s", "a", 0);
    assert_edge(g, "a", "b", 1);
    assert_edge(g, "a", "c", 1);
    assert_edge(g, "b", "d", 1);
    assert_edge(g, "c", "d", 1);
    assert_edge(g, "d", "e", 0);
    assert_edge(g, "d", "f", 0);
    assert_edge(g, "f", "h", 1);
    /* Edges come in the order the parser meets them: a block's inner
     * links before the links into it. */
    assert_int_equal(g->edges[0].from, (uint32_t)stage_idx(g, "a"));
    assert_int_equal(g->edges[0].to, (uint32_t)stage_idx(g, "b"));
    assert_int_equal(g->edges[4].from, (uint32_t)stage_idx(g, "s"));
    assert_int_equal(g->edges[7].to, (uint32_t)stage_idx(g, "f"));
    assert_int_equal(g->stages[stage_idx(g, "s")].need_caps, IF_CAP_PRODUCE);
    assert_int_equal(g->stages[stage_idx(g, "h")].need_caps, IF_CAP_PROCESS);
    assert_int_equal(g->sources[0].interval_ns, 100000000ull);
    fl_graph_free(g);
}

/* Demand options and defaults; a link declared twice is kept once (and is
 * bidirectional when either declaration is). */
static void test_demand_and_dedup(void **state)
{
    fl_graph *g = parse_ok(
        "devices d \"n%d\" x 3\r\n"
        "stage s1 @d log\nstage s2 @d log\nstage s3 @d log every 2m\n"
        "stage k @edge log\n"
        "flow a: demand(s1) ~> k\n"
        "flow b: demand(s2 credits 8 policy drop-oldest buffer 32 every "
        "250ms) <~> k\n"
        "flow c: demand( s3\n   policy sample ) <~> k\n");
    (void)state;
    assert_int_equal(g->nsources, 3);
    assert_int_equal(g->sources[0].mode, FL__MODE_DEMAND);
    assert_int_equal(g->sources[0].credits, 16);
    assert_int_equal(g->sources[0].policy, FL__POLICY_BLOCK);
    assert_int_equal(g->sources[0].buffer, 16);
    assert_int_equal(g->sources[0].interval_ns, 0);
    assert_int_equal(g->sources[1].credits, 8);
    assert_int_equal(g->sources[1].policy, FL__POLICY_DROP_OLDEST);
    assert_int_equal(g->sources[1].buffer, 32);
    assert_int_equal(g->sources[1].interval_ns, 250000000ull);
    assert_int_equal(g->sources[2].policy, FL__POLICY_SAMPLE);
    assert_int_equal(g->sources[2].buffer, 1);
    assert_int_equal(g->sources[2].interval_ns, 120000000000ull);
    assert_int_equal(g->ndevices, 3);
    assert_string_equal(g->device_names[2], "n2");
    assert_int_equal(g->nedges, 3);
    assert_edge(g, "s1", "k", 0);
    assert_edge(g, "s2", "k", 1);
    fl_graph_free(g);

    g = parse_ok("stage a @edge log every 1s\nstage b @edge log\n"
                 "flow f: push(a) ~> b\nstage c @edge log\n"
                 "flow g: pull(c every 1h) ~> [a, b]\n");
    assert_int_equal(g->nedges, 2);
    assert_edge(g, "a", "b", 1); /* ~> in f, inside a serial block in g */
    assert_int_equal(g->edges[0].flow, 0);
    assert_int_equal(g->sources[1].interval_ns, 3600000000000ull);
    fl_graph_free(g);
}

static void test_set_devices(void **state)
{
    fl_graph *g = parse_ok("devices rooms \"room-%02d\" x 10\n"
                           "devices lab \"lab%d\" x 2\n"
                           "stage s @rooms log every 1s\n"
                           "stage l @lab log\nstage all @device log\n"
                           "stage e @edge log\nflow f: push(s) ~> e\n");
    (void)state;
    assert_int_equal(fl_graph_set_devices(g, "rooms", 100), FL_OK);
    assert_int_equal(g->ndevices, 102);
    assert_string_equal(g->device_names[99], "room-99");
    assert_string_equal(g->device_names[100], "lab0");
    assert_int_equal(g->groups[1].first_device, 100);
    assert_int_equal(g->stages[0].ninstances, 100);
    assert_int_equal(g->stages[1].ninstances, 2);
    assert_int_equal(g->stages[1].first_device, 100);
    assert_int_equal(g->stages[2].ninstances, 102);
    assert_int_equal(g->stages[3].ninstances, 1);
    assert_int_equal(fl_graph_set_devices(g, "rooms", 1000), FL_OK);
    assert_string_equal(g->device_names[999], "room-999");
    assert_int_equal(fl_graph_set_devices(g, "nope", 3), FL_ARG);
    assert_int_equal(fl_graph_set_devices(g, "rooms", 0), FL_ARG);
    assert_int_equal(fl_graph_set_devices(g, "rooms", 100001), FL_ARG);
    assert_int_equal(g->ndevices, 1002);
    fl_graph_free(g);

    /* A size change that would duplicate a name is refused, unchanged. */
    g = parse_ok("devices a \"n-%d\" x 2\ndevices b \"n-1%d\" x 2\n");
    assert_int_equal(fl_graph_set_devices(g, "a", 11), FL_ARG);
    assert_int_equal(g->ndevices, 4);
    assert_string_equal(g->device_names[2], "n-10");
    fl_graph_free(g);
}

/* ------------------------------------------------------------------------ */
/* Bad flows: exact error texts.                                            */

typedef struct bad_case {
    const char *text;
    fl_status st;
    const char *err;
} bad_case;

#define E(l, c) "t.flow:" #l ":" #c ": error: "

static const bad_case bad[] = {
    {"stage a edge log\n", FL_SYNTAX,
     E(1, 9) "unexpected \"edge\"\n"
     "  stage a edge log\n"
     "          ^~~~ expected a placement: @device, @edge, @cloud or @GROUP"},
    {"stag a @edge log\n", FL_SYNTAX,
     E(1, 1) "unexpected \"stag\"\n"
     "  stag a @edge log\n"
     "  ^~~~ expected a declaration: devices, group, node, stage or flow"},
    {"stage a @edge log every 1s\nflow f: push(a) ~> clen\n", FL_CHECK,
     E(2, 20) "unknown stage \"clen\" in flow \"f\"\n"
     "  flow f: push(a) ~> clen\n"
     "                     ^~~~ expected a declared stage"},
    {"stage a @edge log\nstage a @cloud null\n", FL_CHECK,
     E(2, 7) "duplicate stage \"a\" (first declared at 1:7)\n"
     "  stage a @cloud null\n"
     "        ^ expected a name not used by another stage"},
    {"devices r \"r%d\" x 2\ngroup r @cloud\n", FL_CHECK,
     E(2, 7) "duplicate group \"r\" (first declared at 1:9)\n"
     "  group r @cloud\n"
     "        ^ expected a name not used by another group"},
    {"stage a @edge log every 1s\nstage b @edge log\nflow f: push(a) ~> b\n"
     "flow f: push(b every 1s) ~> a\n", FL_CHECK,
     E(4, 6) "duplicate flow \"f\" (first declared at 3:6)\n"
     "  flow f: push(b every 1s) ~> a\n"
     "       ^ expected a name not used by another flow"},
    {"stage a @edge log every 1s\nstage b @edge log\nstage c @edge log\n"
     "flow f: push(a) ~> [b, c, b]\n", FL_CHECK,
     E(4, 27) "cycle in flow \"f\": \"b\" ~> \"c\" ~> \"b\"\n"
     "  flow f: push(a) ~> [b, c, b]\n"
     "                            ^ expected no path from a stage back to "
     "itself"},
    {"stage a @edge log every 1s\nstage b @edge log\nflow f: push(a) ~> b\n"
     "flow g: pull(b every 1s) ~> a\n", FL_CHECK,
     E(4, 29) "cycle in flow \"g\": \"a\" ~> \"b\" ~> \"a\"\n"
     "  flow g: pull(b every 1s) ~> a\n"
     "                              ^ expected no path from a stage back to "
     "itself"},
    {"stage a @edge blah \"x\"\n", FL_CHECK,
     E(1, 15) "unknown stage kind \"blah\"\n"
     "  stage a @edge blah \"x\"\n"
     "                ^~~~ expected \"wasm\", \"native\" or a builtin: log, "
     "jsonl, null, sample, rate, filter, delay"},
    {"stage a @hall log\n", FL_CHECK,
     E(1, 10) "unknown placement \"hall\" of stage \"a\"\n"
     "  stage a @hall log\n"
     "           ^~~~ expected device, edge, cloud or a declared group"},
    {"stage a @edge log\nstage b @edge log\nflow f: push(a) ~> b\n",
     FL_CHECK,
     E(3, 14) "push source \"a\" has no interval\n"
     "  flow f: push(a) ~> b\n"
     "               ^ expected \"every DURATION\" here or in the stage's "
     "declaration"},
    {"devices r \"r%d\" x 2\nstage a @r log actuator led\n", FL_CHECK,
     E(2, 25) "unknown actuator stage \"led\"\n"
     "  stage a @r log actuator led\n"
     "                          ^~~ expected a declared stage"},
    {"devices r \"r%d\" x 2\nstage b @edge log\nstage a @r log actuator b\n",
     FL_CHECK,
     E(3, 25) "actuator \"b\" of stage \"a\" is on the edge layer\n"
     "  stage a @r log actuator b\n"
     "                          ^ expected a stage placed @device or @r"},
    {"devices r \"r%d\" x 2\ndevices q \"q%d\" x 2\nstage b @q log\n"
     "stage a @r log actuator b\n", FL_CHECK,
     E(4, 25) "actuator \"b\" of stage \"a\" does not run on the same "
     "devices\n"
     "  stage a @r log actuator b\n"
     "                          ^ expected a stage placed @device or @r"},
    {"stage a @cloud log actuator b\nstage b @cloud log\n", FL_CHECK,
     E(1, 29) "stage \"a\" on the cloud layer cannot have an actuator\n"
     "  stage a @cloud log actuator b\n"
     "                              ^ expected \"actuator\" only on device "
     "stages"},
    {"stage a @edge log every 5x\n", FL_SYNTAX,
     E(1, 25) "invalid duration \"5x\"\n"
     "  stage a @edge log every 5x\n"
     "                          ^~ expected a whole number with ms, s, m or "
     "h (e.g. 500ms, 1s), at most 24h"},
    {"stage a @edge log every 1.5s\n", FL_SYNTAX,
     E(1, 25) "invalid duration \"1.5s\"\n"
     "  stage a @edge log every 1.5s\n"
     "                          ^~~~ expected a whole number with ms, s, m "
     "or h (e.g. 500ms, 1s), at most 24h"},
    {"stage a @edge log every 1s\nflow f: puhs(a) ~> a\n", FL_SYNTAX,
     E(2, 9) "unexpected \"puhs\"\n"
     "  flow f: puhs(a) ~> a\n"
     "          ^~~~ expected a source mode: push, pull or demand"},
    {"stage a @edge log\nstage b @edge log\n"
     "flow f: demand(a policy drop) ~> b\n", FL_SYNTAX,
     E(3, 25) "unexpected \"drop\"\n"
     "  flow f: demand(a policy drop) ~> b\n"
     "                          ^~~~ expected a policy: block, drop-oldest "
     "or sample"},
    {"stage a @edge log\nstage b @edge log\n"
     "flow f: push(a credits 3) ~> b\n", FL_SYNTAX,
     E(3, 16) "unexpected \"credits\"\n"
     "  flow f: push(a credits 3) ~> b\n"
     "                 ^~~~~~~ expected \"every\" or \")\""},
    {"stage a @edge log\nstage b @edge log\n"
     "flow f: demand(a buffer 3) ~> b\n", FL_SYNTAX,
     E(3, 18) "\"buffer\" applies only to policy drop-oldest\n"
     "  flow f: demand(a buffer 3) ~> b\n"
     "                   ^~~~~~ expected \"buffer\" only with \"policy "
     "drop-oldest\""},
    {"stage a @edge log\nstage b @edge log\n"
     "flow f: demand(a credits 0) ~> b\n", FL_SYNTAX,
     E(3, 26) "invalid credits \"0\"\n"
     "  flow f: demand(a credits 0) ~> b\n"
     "                           ^ expected a whole number from 1 to 65536"},
    {"stage a @edge log every 1s \"x\n", FL_SYNTAX,
     E(1, 28) "unterminated string\n"
     "  stage a @edge log every 1s \"x\n"
     "                             ^~ expected a closing \" on the same line"},
    {"stage a @edge log \"x\\q\"\n", FL_SYNTAX,
     E(1, 21) "invalid escape \"\\q\" in string\n"
     "  stage a @edge log \"x\\q\"\n"
     "                      ^~ expected \\\", \\\\, \\n or \\t"},
    {"stage a @edge log $\n", FL_SYNTAX,
     E(1, 19) "unexpected character \"$\"\n"
     "  stage a @edge log $\n"
     "                    ^ expected a name, number, string or one of @ : "
     "( ) [ ] { } , ~> <~>"},
    {"devices r \"r%s\" x 2\n", FL_SYNTAX,
     E(1, 11) "invalid node name pattern \"r%s\"\n"
     "  devices r \"r%s\" x 2\n"
     "            ^~~~~ expected a name with one %d, %Nd or %0Nd (N at most "
     "9) for the node number when there is more than one node; %% for a "
     "percent sign"},
    {"devices r \"r%d\" x 0\n", FL_SYNTAX,
     E(1, 19) "invalid node count \"0\"\n"
     "  devices r \"r%d\" x 0\n"
     "                    ^ expected a whole number from 1 to 100000"},
    {"devices a \"n-%d\" x 20\ndevices b \"n-1%d\" x 2\n", FL_CHECK,
     E(2, 9) "device name \"n-10\" of group \"b\" is also in group \"a\"\n"
     "  devices b \"n-1%d\" x 2\n"
     "          ^ expected device names unique over all groups"},
    {"devices a \"a%d\" x 60000\ndevices b \"b%d\" x 60000\n", FL_CHECK,
     E(2, 9) "too many devices (120000)\n"
     "  devices b \"b%d\" x 60000\n"
     "          ^ expected at most 100000 devices over all groups"},
    {"stage a @edge log every 1s every 2s\n", FL_SYNTAX,
     E(1, 28) "option \"every\" given twice\n"
     "  stage a @edge log every 1s every 2s\n"
     "                             ^~~~~ expected each option at most once"},
    {"stage a @edge sample 10 config \"x\"\n", FL_SYNTAX,
     E(1, 32) "stage \"a\" has both an argument and \"config\"\n"
     "  stage a @edge sample 10 config \"x\"\n"
     "                                 ^~~ expected either an argument "
     "after the kind or \"config\""},
    {"stage a @edge log every 1s\nstage b @edge log\nflow f: push(a) ~> b\n"
     "flow g: push(a) ~> b\n", FL_CHECK,
     E(4, 14) "stage \"a\" is already the source of flow \"f\"\n"
     "  flow g: push(a) ~> b\n"
     "               ^ expected one flow per source"},
    {"stage a @device log\n", FL_CHECK,
     E(1, 10) "stage \"a\" is placed @device but no device group is "
     "declared\n"
     "  stage a @device log\n"
     "           ^~~~~~ expected a \"devices NAME ...\" declaration"},
    {"stage a @edge log every 1s\nflow f: push(a) ~> []\n", FL_SYNTAX,
     E(2, 21) "unexpected \"]\"\n"
     "  flow f: push(a) ~> []\n"
     "                      ^ expected a stage name, \"[\" or \"{\""},
    {"stage a @edge log every 1s\nflow f: push(a)\n", FL_SYNTAX,
     E(2, 16) "unexpected end of line\n"
     "  flow f: push(a)\n"
     "                 ^ expected \"~>\" or \"<~>\" (a flow needs a stage "
     "after its source)"},
    {"stage a @edge log every 1s\nstage b @edge log\n"
     "flow f: push(a) ~> {b b}\n", FL_SYNTAX,
     E(3, 23) "unexpected \"b\"\n"
     "  flow f: push(a) ~> {b b}\n"
     "                        ^ expected \",\" or \"}\""},
    {"stage a @edge log memory 100K\n", FL_SYNTAX,
     E(1, 26) "invalid memory size \"100K\"\n"
     "  stage a @edge log memory 100K\n"
     "                           ^~~~ expected a multiple of 64K from 64K to "
     "4G (e.g. 16M, 640K)"},
    {"stage a @edge log fuel 99999999999999999999999\n", FL_SYNTAX,
     E(1, 24) "invalid fuel \"99999999999999999999999\"\n"
     "  stage a @edge log fuel 99999999999999999999999\n"
     "                         ^~~~~~~~~~~~~~~~~~~~~~~ expected a whole "
     "number from 1 to 9223372036854775807"},
    {"stage a @edge wasm\n", FL_SYNTAX,
     E(1, 19) "unexpected end of line\n"
     "  stage a @edge wasm\n"
     "                    ^ expected the stage's file name (a string)"},
    {"stage a @edge log colour red\n", FL_SYNTAX,
     E(1, 19) "unexpected \"colour\"\n"
     "  stage a @edge log colour red\n"
     "                    ^~~~~~ expected an option (config, every, "
     "actuator, fuel, memory) or end of line"},
    {"group edge @cloud\n", FL_SYNTAX,
     E(1, 7) "group name \"edge\" is reserved\n"
     "  group edge @cloud\n"
     "        ^~~~ expected a name other than device, edge or cloud"},
    {"group g @moon\n", FL_SYNTAX,
     E(1, 10) "unexpected \"moon\"\n"
     "  group g @moon\n"
     "           ^~~~ expected a layer: device, edge or cloud"},
    {"stage abcdefghijklmnopqrstuvwxyz0123456 @edge log\n", FL_SYNTAX,
     E(1, 7) "name too long (33 bytes)\n"
     "  stage abcdefghijklmnopqrstuvwxyz0123456 @edge log\n"
     "        ^~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~ expected at most 31 bytes"},
    {"stage a @edge log\tevery 1s # comment\n\tstage\n", FL_SYNTAX,
     E(2, 7) "unexpected end of line\n"
     "   stage\n"
     "        ^ expected a stage name"},
    {"stage a @edge log every 1s\nstage b @edge log\n"
     "flow f: push(a) ~> {b,\n   b, c}\n", FL_CHECK,
     E(4, 7) "unknown stage \"c\" in flow \"f\"\n"
     "     b, c}\n"
     "        ^ expected a declared stage"},
    {"stage a @edge log\nflow f push(a)\n", FL_SYNTAX,
     E(2, 8) "unexpected \"push\"\n"
     "  flow f push(a)\n"
     "         ^~~~ expected \":\""},
};

static void test_bad_flows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fl_graph *g = (fl_graph *)1;
        fl_status st = fl_graph_parse("t.flow", bad[i].text,
                                      strlen(bad[i].text), "/base", 0, &g,
                                      g_err, sizeof g_err);
        if (st != bad[i].st || strcmp(g_err, bad[i].err) != 0)
            fail_msg("case %zu: status %d (want %d)\ngot:\n%s\nwant:\n%s",
                     i, (int)st, (int)bad[i].st, g_err, bad[i].err);
        assert_null(g);
    }
}

/* ------------------------------------------------------------------------ */
/* Nodes: declarations, connections and their checks (docs/NODES.md).      */

static const char nodes_flow[] =
    "devices rooms \"room-%02d\" x 3 connect edge\n"
    "node cloud @cloud listen \"127.0.0.1:7400\"\n"
    "node edge @edge listen \"127.0.0.1:7401\" connect cloud\n"
    "stage s @rooms wasm \"s.wasm\" every 1s\n"
    "stage e @edge log\n"
    "stage c @cloud jsonl \"out/c.jsonl\"\n"
    "flow f: push(s) <~> e <~> c\n";

static const bad_case bad_nodes[] = {
    {"devices r x 2 connect edge\nnode edge @edge listen \"h:1\" connect "
     "nope\n", FL_CHECK,
     E(2, 38) "unknown node \"nope\" in connect of node \"edge\"\n"
     "  node edge @edge listen \"h:1\" connect nope\n"
     "                                       ^~~~ expected a declared node"},
    {"devices r x 2 connect edg\nnode edge @edge listen \"h:1\"\n", FL_CHECK,
     E(1, 23) "unknown node \"edg\" in connect of devices \"r\"\n"
     "  devices r x 2 connect edg\n"
     "                        ^~~ expected a declared node"},
    {"node a @cloud listen \"h:1\"\nnode b @edge listen \"h:1\" connect a\n",
     FL_CHECK,
     E(2, 21) "duplicate address \"h:1\" of node \"b\" (node \"a\" listens "
     "there)\n"
     "  node b @edge listen \"h:1\" connect a\n"
     "                      ^~~~~ expected an address no other node listens "
     "on"},
    {"node e @edge listen \"h:1\"\nstage x @edge log\nstage y @cloud log\n"
     "flow f: push(x every 1s) ~> y\n", FL_CHECK,
     E(3, 10) "stage \"y\" is on the cloud layer, which has no node\n"
     "  stage y @cloud log\n"
     "           ^~~~~ expected a \"node NAME @LAYER ...\" declaration for "
     "this layer"},
    {"devices r x 2\nnode e @edge listen \"h:1\"\nstage s @r wasm \"s.wasm\" "
     "every 1s\nstage x @edge log\nflow f: push(s) ~> x\n", FL_CHECK,
     E(1, 9) "devices \"r\" run stage \"s\" but connect to no node\n"
     "  devices r x 2\n"
     "          ^ expected \"connect NODE\" on the devices declaration"},
    {"node e @edge listen \"nohost\"\n", FL_SYNTAX,
     E(1, 21) "invalid address \"nohost\"\n"
     "  node e @edge listen \"nohost\"\n"
     "                      ^~~~~~~~ expected \"HOST:PORT\""},
    {"node c @cloud listen \"h:1\" connect c\n", FL_CHECK,
     E(1, 36) "node \"c\" (cloud) cannot connect to node \"c\" (cloud)\n"
     "  node c @cloud listen \"h:1\" connect c\n"
     "                                     ^ expected a node of the next "
     "layer up"},
    {"node e @device listen \"h:1\"\n", FL_SYNTAX,
     E(1, 9) "unexpected \"device\"\n"
     "  node e @device listen \"h:1\"\n"
     "          ^~~~~~ expected a layer: edge or cloud (device nodes are "
     "declared with \"devices ... connect NODE\")"},
};

static void test_nodes(void **state)
{
    (void)state;
    fl_graph *g = parse_ok(nodes_flow);
    assert_int_equal(g->nnodes, 2);
    assert_string_equal(g->nodes[0].name, "cloud");
    assert_int_equal(g->nodes[0].layer, 2);
    assert_string_equal(g->nodes[0].listen, "127.0.0.1:7400");
    assert_null(g->nodes[0].connect);
    assert_int_equal(g->nodes[0].connect_idx, -1);
    assert_string_equal(g->nodes[1].name, "edge");
    assert_int_equal(g->nodes[1].connect_idx, 0);
    assert_int_equal(g->groups[0].connect_idx, 1);
    assert_string_equal(g->groups[0].connect, "edge");
    assert_int_equal(g->stages[2].node_mode, 1);
    fl_graph_free(g);
    /* Without node declarations nothing changes. */
    g = parse_ok("stage a @edge log\nstage b @cloud log\n"
                 "flow f: push(a every 1s) ~> b\n");
    assert_int_equal(g->nnodes, 0);
    assert_int_equal(g->stages[0].node_mode, 0);
    fl_graph_free(g);
    for (size_t i = 0; i < sizeof bad_nodes / sizeof bad_nodes[0]; i++) {
        fl_graph *b = (fl_graph *)1;
        fl_status st = fl_graph_parse("t.flow", bad_nodes[i].text,
                                      strlen(bad_nodes[i].text), "/base", 0,
                                      &b, g_err, sizeof g_err);
        if (st != bad_nodes[i].st || strcmp(g_err, bad_nodes[i].err) != 0)
            fail_msg("case %zu: status %d (want %d)\ngot:\n%s\nwant:\n%s",
                     i, (int)st, (int)bad_nodes[i].st, g_err,
                     bad_nodes[i].err);
        assert_null(b);
    }
}

/* Limits: nesting depth, line length, NUL bytes, number of stages, text
 * size. */
static void test_limits(void **state)
{
    char *t = malloc(2 * 1024 * 1024);
    size_t n = 0;
    fl_graph *g = NULL;
    (void)state;
    assert_non_null(t);

    n = (size_t)snprintf(t, 200, "stage a @edge log every 1s\nstage b @edge "
                                 "log\nflow f: push(a) ~> ");
    for (int i = 0; i < 70; i++)
        t[n++] = '[';
    t[n++] = 'b';
    for (int i = 0; i < 70; i++)
        t[n++] = ']';
    t[n] = '\0';
    assert_int_equal(fl_graph_parse("t.flow", t, n, NULL, 0, &g, g_err,
                                    sizeof g_err), FL_SYNTAX);
    {
        /* A window of 120 bytes of the 160-byte line, 60 before the column:
         * "..." + 60 bytes, the caret under the 65th "[". */
        char want[512];
        size_t w = 0;
        w += (size_t)snprintf(want, sizeof want, "t.flow:3:84: error: blocks "
                                                 "nested too deeply\n  ...");
        memcpy(want + w, t + 45 + 23, 120);
        w += 120;
        w += (size_t)snprintf(want + w, sizeof want - w, "...\n%*s^ expected "
                              "at most 64 levels of [ ] and { }", 65, "");
        assert_string_equal(g_err, want);
    }

    memset(t, 'x', 5000);
    memcpy(t, "# ", 2);
    t[5000] = '\n';
    assert_int_equal(fl_graph_parse("t.flow", t, 5001, NULL, 0, &g, g_err,
                                    sizeof g_err), FL_SYNTAX);
    assert_non_null(strstr(g_err, "t.flow:1:4097: error: line too long "
                                  "(5000 bytes)\n  ...xxx"));
    assert_non_null(strstr(g_err, "^ expected at most 4096 bytes per line"));

    assert_int_equal(fl_graph_parse("t.flow", "stage a\0", 8, NULL, 0, &g,
                                    g_err, sizeof g_err), FL_SYNTAX);
    assert_string_equal(g_err, "t.flow:1:8: error: unexpected NUL byte\n"
                               "  stage a?\n"
                               "         ^ expected text (a flow file holds "
                               "no NUL bytes)");

    n = 0;
    for (int i = 0; i < 4097; i++)
        n += (size_t)snprintf(t + n, 64, "stage s%d @edge null\n", i);
    assert_int_equal(fl_graph_parse("t.flow", t, n, NULL, 0, &g, g_err,
                                    sizeof g_err), FL_SYNTAX);
    assert_string_equal(g_err, "t.flow:4097:7: error: too many stages\n"
                               "  stage s4096 @edge null\n"
                               "        ^~~~~ expected at most 4096 stages");

    memset(t, '\n', 1024 * 1024 + 1);
    assert_int_equal(fl_graph_parse("t.flow", t, 1024 * 1024 + 1, NULL, 0, &g,
                                    g_err, sizeof g_err), FL_SYNTAX);
    assert_string_equal(g_err, "t.flow: error: flow text too large (1048577 "
                               "bytes; at most 1048576)");
    assert_null(g);
    free(t);
}

/* Files: relative paths against the flow file's directory, missing files,
 * and the stage host's check (a module without the needed exports). */
static void test_files(void **state)
{
    char dir[] = "/tmp/flowtestXXXXXX", path[256], exp[1024];
    FILE *f;
    fl_graph *g = NULL;
    static const unsigned char empty_wasm[] = {0, 'a', 's', 'm', 1, 0, 0, 0};
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/home.flow", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("stage a @edge log every 1s\nstage b @edge wasm \"empty.wasm\"\n"
          "flow f: push(a) ~> b\n", f);
    fclose(f);
    assert_int_equal(fl_graph_load(path, &g, g_err, sizeof g_err), FL_CHECK);
    snprintf(exp, sizeof exp,
             "%s:2:20: error: stage \"b\": cannot open \"%s/empty.wasm\": "
             "No such file or directory\n"
             "  stage b @edge wasm \"empty.wasm\"\n"
             "                     ^~~~~~~~~~~~ expected an existing .wasm "
             "file (relative paths start at the flow file's directory)",
             path, dir);
    assert_string_equal(g_err, exp);

    /* The file exists but exports nothing: the wasm host's check rejects
     * it (its text is the host's; the position and expectation are ours). */
    snprintf(path, sizeof path, "%s/empty.wasm", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(empty_wasm, 1, sizeof empty_wasm, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/home.flow", dir);
    assert_int_equal(fl_graph_load(path, &g, g_err, sizeof g_err), FL_CHECK);
    snprintf(exp, sizeof exp,
             "%s:2:20: error: stage 'b': empty.wasm does not export "
             "isoflow_abi (not built with the isoflow SDK?)\n"
             "  stage b @edge wasm \"empty.wasm\"\n"
             "                     ^~~~~~~~~~~~ expected a stage defining "
             "stage_process (it has an upstream)",
             path);
    assert_string_equal(g_err, exp);
    assert_null(g);

    /* A builtin whose configuration its host rejects. */
    {
        static const char t[] = "stage c @edge sample \"x\"\n";
        assert_int_equal(fl_graph_parse("t.flow", t, strlen(t), dir, 1, &g,
                                        g_err, sizeof g_err), FL_CHECK);
        assert_string_equal(g_err,
            "t.flow:1:22: error: stage 'c': sample needs a whole number N >= "
            "1 (forward every Nth message), got 'x'\n"
            "  stage c @edge sample \"x\"\n"
            "                       ^~~ expected a configuration \"sample\" "
            "accepts (see its help)");
    }

    /* A missing flow file. */
    snprintf(path, sizeof path, "%s/none.flow", dir);
    assert_int_equal(fl_graph_load(path, &g, g_err, sizeof g_err), FL_IO);
    snprintf(exp, sizeof exp, "%s: error: cannot open: No such file or "
                              "directory", path);
    assert_string_equal(g_err, exp);

    snprintf(path, sizeof path, "%s/empty.wasm", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/home.flow", dir);
    unlink(path);
    rmdir(dir);
}

static void test_status_msg(void **state)
{
    (void)state;
    assert_string_equal(fl_status_msg(FL_OK), "ok");
    assert_string_equal(fl_status_msg(FL_SYNTAX), "syntax error");
    assert_string_equal(fl_status_msg(FL_CHECK), "inconsistent flow");
    assert_string_equal(fl_status_msg(FL_STOPPED), "stopped");
    assert_string_equal(fl_status_msg(FL_STATUS_COUNT), "unknown status");
}

/* The topology API tools use (fl_graph_place*, fl_graph_stage_find,
 * fl_graph_stage_on): nodes first, then devices; groups, listen and
 * connect addresses; where each stage runs. */
static void test_topology(void **state)
{
    (void)state;
    fl_graph *g = parse_ok(
        "devices rooms \"room-%d\" x 2 connect edge\n"
        "devices hall \"hall\" x 1 connect edge\n"
        "node cloud @cloud listen \"127.0.0.1:7000\"\n"
        "node edge @edge listen \"127.0.0.1:7001\" connect cloud\n"
        "stage s @rooms wasm \"s.wasm\"\n"
        "stage h @hall log\n"
        "stage e @edge log\n"
        "stage c @cloud log\n"
        "flow a: push(s every 1s) ~> e ~> c\n"
        "flow b: push(h every 1s) ~> e\n");
    fl_place p;
    assert_int_equal(fl_graph_place_count(g), 5);
    assert_int_equal(fl_graph_place(g, 0, &p), FL_OK);
    assert_string_equal(p.name, "cloud");
    assert_string_equal(p.layer, "cloud");
    assert_string_equal(p.listen, "127.0.0.1:7000");
    assert_null(p.connect);
    assert_null(p.group);
    assert_int_equal(fl_graph_place(g, 1, &p), FL_OK);
    assert_string_equal(p.name, "edge");
    assert_string_equal(p.connect, "cloud");
    assert_int_equal(fl_graph_place(g, 3, &p), FL_OK);
    assert_string_equal(p.name, "room-1");
    assert_string_equal(p.layer, "device");
    assert_string_equal(p.group, "rooms");
    assert_string_equal(p.connect, "edge");
    assert_null(p.listen);
    assert_int_equal(fl_graph_place(g, 5, &p), FL_ARG);
    assert_int_equal(fl_graph_place_find(g, "hall", &p), FL_OK);
    assert_string_equal(p.group, "hall");
    assert_int_equal(fl_graph_place_find(g, "nobody", &p), FL_ARG);

    fl_stage_desc d;
    assert_int_equal(fl_graph_stage_find(g, "s", &d), FL_OK);
    assert_string_equal(d.kind, "wasm");
    assert_string_equal(d.layer, "device");
    assert_int_equal(fl_graph_stage_find(g, "zz", &d), FL_ARG);
    assert_int_equal(fl_graph_stage_on(g, "s", "room-0"), 1);
    assert_int_equal(fl_graph_stage_on(g, "s", "hall"), 0); /* other group */
    assert_int_equal(fl_graph_stage_on(g, "h", "hall"), 1);
    assert_int_equal(fl_graph_stage_on(g, "s", "edge"), 0);
    assert_int_equal(fl_graph_stage_on(g, "e", "edge"), 1);
    assert_int_equal(fl_graph_stage_on(g, "e", "cloud"), 0);
    assert_int_equal(fl_graph_stage_on(g, "c", "cloud"), 1);
    assert_int_equal(fl_graph_stage_on(g, "c", "nobody"), 0);
    fl_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_home_graph),
        cmocka_unit_test(test_home_sources),
        cmocka_unit_test(test_home_print),
        cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_demand_and_dedup),
        cmocka_unit_test(test_set_devices),
        cmocka_unit_test(test_bad_flows),
        cmocka_unit_test(test_nodes),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_status_msg),
        cmocka_unit_test(test_topology),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
