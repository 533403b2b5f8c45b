#!/usr/bin/env python3
"""run.py - isoflow's benchmark runner (stdlib only).

Runs every program of bench/programs natively, under `isoflow wasm run` (our
interpreter) and under Node's WASI, alternating the runtimes, BENCH_REPS
times (default 3); checks that all of them print the same checksum line;
takes median wall times and peak RSS (from wait4); runs the engine
micro-benchmarks (bench_engine); prints a table and writes a flat JSON object
name -> number (default build/bench/results.json).

    python3 bench/run.py [--build DIR] [--reps N] [--out FILE]
                         [--programs a,b] [--runtimes native,isoflow,node]
                         [--isoflow CMD] [--smoke] [--selftest]
                         [--only all|programs|flows|nodes|deploy]

Then the flow engine benchmarks (bench/flows/, see "Flow engine" in
bench/RESULTS.md): `isoflow run` of a 3-stage pipeline of trivial Wasm stages
and of the home flow, in demand and in push mode, alternating, medians of the
rate, end-to-end p50/p99 and peak RSS, then push runs at half rate for the
latency target; figures flow.* in the same JSON.  BENCH_ONLY=flows (or
--only flows) runs only them and merges their figures into an existing
results file; --only flows --smoke (the bench-smoke-flows test) runs one
flow for ~1 s and checks its figures and message counts.

Exit status: 0, or 1 when a run fails, a checksum differs or a figure is
missing.  --smoke (the bench-smoke test) runs tiny sizes once and then checks
the JSON it wrote; --selftest checks the runner's own helpers.
"""

import argparse
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# name -> (size argument for `make bench`, size for --smoke, what it means).
# Sizes are the same for every runtime; chosen so that each engine run takes
# at least ~0.3 s and the whole `make bench` stays within ~5 minutes on a
# 2-core machine.
PROGRAMS = {
    "fib": ("37", "20", "n (recursive fib)"),
    "sieve": ("10000000", "100000", "limit"),
    "matmul": ("512", "24", "n (n x n f32)"),
    "sha256": ("24", "1", "MiB hashed"),
    "sort": ("3000000", "10000", "ints"),
    "mobilenet": ("8", "1", "blocks of 112x112x32"),
    "crc32": ("64", "1", "MiB"),
    "records": ("300000", "1000", "records"),
}
SMOKE_PROGRAMS = ["fib", "sieve"]
RUNTIMES = ["native", "isoflow", "node"]

# Micro-benchmark figures: key, label, target, reference for scale.
MICRO = [
    ("call.tiny_ns", "host->Wasm call of a tiny export", "ns", 20.0,
     "~10 ns"),
    ("call.msg64_ns", "64 B iw_memory_write + on_msg(ptr,len) call", "ns",
     150.0, "~300 ns"),
    ("load.total_us", "load+validate+translate+instantiate", "us", 1000.0,
     "0.6-2.5 ms"),
]
MICRO_REQUIRED = [m[0] for m in MICRO] + [
    "load.module_bytes", "load.decode_us", "load.instantiate_us",
    "fuel.loop_off_ms", "fuel.loop_on_ms", "fuel.loop_overhead_pct",
    "fuel.call_off_ms", "fuel.call_on_ms", "fuel.call_overhead_pct",
]


class BenchError(Exception):
    """A run failed or produced an unexpected result."""


def median(values):
    """Median of a non-empty list of numbers."""
    if not values:
        raise ValueError("median of nothing")
    return statistics.median(values)


def geomean(values):
    """Geometric mean of positive numbers (None when the list is empty)."""
    if not values:
        return None
    if any(v <= 0 for v in values):
        raise ValueError("geomean needs positive values")
    return math.exp(sum(math.log(v) for v in values) / len(values))


def checksum_line(stdout):
    """The last stdout line containing 'checksum', stripped, or None."""
    lines = [l.strip() for l in stdout.splitlines() if "checksum" in l]
    return lines[-1] if lines else None


def check_agreement(lines_by_runtime):
    """lines_by_runtime: runtime -> list of checksum lines (one per rep).
    Returns None when every line is identical, else a message naming the
    differing runtimes and lines."""
    seen = {}
    for rt, lines in lines_by_runtime.items():
        for line in lines:
            seen.setdefault(line, []).append(rt)
    if len(seen) <= 1:
        return None
    parts = ["%s: %r" % ("/".join(sorted(set(rts))), line)
             for line, rts in seen.items()]
    return "checksums differ: " + "; ".join(parts)


def parse_engine_output(text):
    """Parses bench_engine's "name value unit" lines ('#' lines are
    comments).  Returns name -> float; raises BenchError on a bad line."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 3:
            raise BenchError("bad bench_engine line: %r" % line)
        try:
            out[fields[0]] = float(fields[1])
        except ValueError:
            raise BenchError("bad bench_engine value: %r" % line) from None
    return out


def run_once(cmd):
    """Runs cmd, returns (exit code, stdout, stderr, wall seconds, peak RSS
    KiB) using wait4 for the child's resource usage."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"), wall,
                usage.ru_maxrss)


def spawn_once(cmd, spawner):
    """Runs cmd through bench_spawn (a small C parent, so the peak RSS is the
    program's own and not inflated by Python's); returns the same tuple as
    run_once with bench_spawn's wall time and peak RSS."""
    with tempfile.NamedTemporaryFile("r", suffix=".spawn") as rep:
        code, out, err, _, _ = run_once([spawner, rep.name] + cmd)
        fields = rep.read().split()
    if len(fields) != 3:
        raise BenchError("bench_spawn gave no report for %s: %s"
                         % (" ".join(cmd), err.strip()[-300:]))
    return code, out, err, int(fields[0]) / 1e9, int(fields[1])


def runtime_cmd(rt, name, size, paths):
    """The command line running program `name` with `size` under rt."""
    wasm = os.path.join(paths["bench"], "wasm", name + ".wasm")
    if rt == "native":
        return [os.path.join(paths["bench"], "native", name), size]
    if rt == "isoflow":
        return paths["isoflow"] + ["wasm", "run", wasm, size]
    if rt == "node":
        return [paths["node"], "--no-warnings", "--single-threaded",
                os.path.join(HERE, "node_wasi.mjs"), wasm, size]
    raise ValueError(rt)


def bench_program(name, size, runtimes, reps, paths, log):
    """Runs one program reps times under each runtime, rotating the order
    every repetition.  Returns rt -> {"ms", "rss_kb", "line"}; raises
    BenchError on a failed run or a checksum mismatch."""
    times = {rt: [] for rt in runtimes}
    rss = {rt: [] for rt in runtimes}
    lines = {rt: [] for rt in runtimes}
    for rep in range(reps):
        k = rep % len(runtimes)
        for rt in runtimes[k:] + runtimes[:k]:
            cmd = runtime_cmd(rt, name, size, paths)
            code, out, err, wall, maxrss = spawn_once(cmd, paths["spawn"])
            line = checksum_line(out)
            if code != 0 or line is None:
                raise BenchError("%s under %s (%s) failed with exit %d: %s"
                                 % (name, rt, " ".join(cmd), code,
                                    (err.strip() or out.strip())[-300:]))
            times[rt].append(wall * 1000.0)
            rss[rt].append(maxrss)
            lines[rt].append(line)
            log("  %-9s %-7s rep %d: %8.1f ms  %s" % (name, rt, rep + 1,
                                                       wall * 1000.0, line))
    msg = check_agreement(lines)
    if msg:
        raise BenchError("%s: %s" % (name, msg))
    return {rt: {"ms": median(times[rt]), "rss_kb": max(rss[rt]),
                 "line": lines[rt][0]} for rt in runtimes}


def run_engine(paths, quick):
    """Runs bench_engine and returns its figures (name -> float)."""
    wasm = os.path.join(paths["bench"], "wasm")
    cmd = [os.path.join(paths["bench"], "bench_engine")]
    if quick:
        cmd.append("--quick")
    cmd += [os.path.join(wasm, "micro_guest.wasm"),
            os.path.join(wasm, "load_guest.wasm")]
    code, out, err, _, _ = run_once(cmd)
    if code != 0:
        raise BenchError("bench_engine failed (exit %d): %s"
                         % (code, err.strip()))
    figures = parse_engine_output(out)
    missing = [k for k in MICRO_REQUIRED if k not in figures]
    if missing:
        raise BenchError("bench_engine gave no " + ", ".join(missing))
    return figures, [l[2:] for l in out.splitlines() if l.startswith("# ")]


def fmt_ratio(a, b):
    return "%.2f" % (a / b) if a and b else "-"


def print_table(results, runtimes, sizes):
    """Prints the per-program table and the geometric means; returns the
    geomean figures (name -> value) for the JSON."""
    def ms(name, rt):
        r = results[name].get(rt)
        return r["ms"] if r else None

    head = ("%-10s %9s %10s %10s %10s %8s %8s %8s  %s"
            % ("program", "size", "native ms", "isoflow ms", "node ms",
               "iso/nat", "node/nat", "iso/node",
               "peak RSS MB (native/isoflow/node)"))
    print(head)
    print("-" * len(head))
    ratios = {"isoflow_over_native": [], "node_over_native": [],
              "isoflow_over_node": []}
    for name in results:
        n, i, d = ms(name, "native"), ms(name, "isoflow"), ms(name, "node")
        rss = "/".join("%.1f" % (results[name][rt]["rss_kb"] / 1024.0)
                       if rt in results[name] else "-" for rt in RUNTIMES)
        print("%-10s %9s %10s %10s %10s %8s %8s %8s  %s"
              % (name, sizes[name],
                 *["%.1f" % v if v else "-" for v in (n, i, d)],
                 fmt_ratio(i, n), fmt_ratio(d, n), fmt_ratio(i, d), rss))
        for key, (a, b) in (("isoflow_over_native", (i, n)),
                            ("node_over_native", (d, n)),
                            ("isoflow_over_node", (i, d))):
            if a and b:
                ratios[key].append(a / b)
    geo = {}
    for key, vals in ratios.items():
        if vals and len(vals) == len(results):
            geo["geomean." + key] = geomean(vals)
    print("%-10s %9s %10s %10s %10s %8s %8s %8s"
          % ("geomean", "", "", "", "",
             *["%.2f" % geo[k] if k in geo else "-"
               for k in ("geomean.isoflow_over_native",
                         "geomean.node_over_native",
                         "geomean.isoflow_over_node")]))
    return geo


def net_geomeans(results, start):
    """Geometric means of the runtime ratios after subtracting each
    runtime's start-up time (from `start`, rt -> {"ms"}) from its figures;
    programs where a net time is not positive are left out.  Returns
    "geomean_net.<a>_over_<b>" -> value."""
    out = {}
    for a, b in (("isoflow", "native"), ("node", "native"),
                 ("isoflow", "node")):
        if a not in start or b not in start:
            continue
        vals = []
        for r in results.values():
            if a in r and b in r:
                x, y = r[a]["ms"] - start[a]["ms"], r[b]["ms"] - start[b]["ms"]
                if x > 0 and y > 0:
                    vals.append(x / y)
        if vals and len(vals) == len(results):
            out["geomean_net.%s_over_%s" % (a, b)] = geomean(vals)
    return out


def print_micro(fig, notes):
    """Prints the micro-benchmarks against their targets."""
    print()
    print("Engine micro-benchmarks (median of repetitions; public API only)")
    head = "%-50s %10s %10s %4s  %s" % ("figure", "isoflow", "target",
                                        "met", "best interpreters")
    print(head)
    print("-" * len(head))
    for key, label, unit, target, ref in MICRO:
        v = fig[key]
        if key == "load.total_us":
            label = "%s (%d B)" % (label, fig["load.module_bytes"])
            shown, tshown = "%.3f ms" % (v / 1000), "< %g ms" % (target / 1000)
        else:
            shown, tshown = "%.1f %s" % (v, unit), "< %g %s" % (target, unit)
        print("%-50s %10s %10s %4s  %s" % (label, shown, tshown,
                                           "yes" if v < target else "NO", ref))
    print("  (load split: decode+validate+translate %.0f us, store+imports+"
          "instantiate %.0f us)" % (fig["load.decode_us"],
                                    fig["load.instantiate_us"]))
    print("  For scale: the Elixir reference design costs ~220 us per Wasm "
          "call.")
    print("Fuel metering (huge budget) vs off:")
    for k, what in (("loop", "loop-heavy (spin)"),
                    ("call", "call-heavy (calls)")):
        print("  %-20s off %8.1f ms  on %8.1f ms  overhead %+.1f%%  "
              "(%.2f ns/step off)"
              % (what, fig["fuel.%s_off_ms" % k], fig["fuel.%s_on_ms" % k],
                 fig["fuel.%s_overhead_pct" % k],
                 fig.get("fuel.%s_off_ns_per_step" % k, 0.0)))
    for n in notes:
        print("  " + n)


def smoke_check(path, programs, runtimes):
    """Re-reads the JSON written by a --smoke run and checks that every
    expected figure is there and positive where it must be.  Returns a list
    of problems (empty when fine)."""
    with open(path) as f:
        data = json.load(f)
    problems = []
    for name in programs:
        if data.get(name + ".checksum_ok") != 1:
            problems.append(name + ".checksum_ok is not 1")
        for rt in runtimes:
            for suffix in ("_ms", "_rss_kb"):
                key = "%s.%s%s" % (name, rt, suffix)
                if not isinstance(data.get(key), (int, float)) or \
                        data[key] <= 0:
                    problems.append("missing or non-positive " + key)
    for key in MICRO_REQUIRED:
        if not isinstance(data.get(key), (int, float)):
            problems.append("missing " + key)
    if any(not isinstance(v, (int, float)) for v in data.values()):
        problems.append("a value is not a number")
    return problems


def selftest(spawner=None):
    """Checks the runner's helpers (and bench_spawn when its path is given);
    returns 0 or 1."""
    fails = []

    def expect(cond, what):
        if not cond:
            fails.append(what)

    expect(median([3, 1, 2]) == 2, "median odd")
    expect(median([4, 1, 3, 2]) == 2.5, "median even")
    expect(abs(geomean([2, 8]) - 4.0) < 1e-12, "geomean")
    expect(geomean([]) is None, "geomean empty")
    expect(checksum_line("x\nfib(5) checksum 5\n") == "fib(5) checksum 5",
           "checksum line")
    expect(checksum_line("no sum here\n") is None, "no checksum line")
    expect(check_agreement({"native": ["a checksum 1"] * 2,
                            "isoflow": ["a checksum 1"]}) is None,
           "agreement")
    msg = check_agreement({"native": ["a checksum 1"],
                           "isoflow": ["a checksum 2"]})
    expect(msg is not None and "isoflow" in msg and "checksum 2" in msg,
           "mismatch detected and named")
    msg = check_agreement({"native": ["a checksum 1", "a checksum 3"]})
    expect(msg is not None, "mismatch between repetitions detected")
    fig = parse_engine_output("# comment\ncall.tiny_ns 12.5 ns\n\n")
    expect(fig == {"call.tiny_ns": 12.5}, "engine output parsed")
    for bad in ("call.tiny_ns 12.5\n", "call.tiny_ns x ns\n"):
        try:
            parse_engine_output(bad)
            fails.append("bad engine line accepted: %r" % bad)
        except BenchError:
            pass
    expect(set(SMOKE_PROGRAMS) <= set(PROGRAMS) and
           all(len(v) == 3 for v in PROGRAMS.values()), "sizes table")
    code, out, _, wall, rss = run_once([sys.executable, "-c",
                                        "print('t checksum 7')"])
    expect(code == 0 and checksum_line(out) == "t checksum 7" and wall > 0
           and rss > 0, "run_once")
    code, _, _, _, _ = run_once([sys.executable, "-c",
                                 "import sys; sys.exit(3)"])
    expect(code == 3, "run_once exit code")
    if spawner and os.path.exists(spawner):
        code, out, _, wall, rss = spawn_once(
            [sys.executable, "-c",
             "b = bytearray(64 << 20); print('s checksum', len(b))"],
            spawner)
        expect(code == 0 and checksum_line(out) == "s checksum 67108864"
               and wall > 0 and 64 * 1024 <= rss < 200 * 1024,
               "spawn_once: output, wall time and a 64 MiB peak RSS "
               "(got %d KiB)" % rss)
        code, _, _, _, _ = spawn_once(["/nonexistent/prog"], spawner)
        expect(code == 127, "spawn_once: missing program gives 127")
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "r.json")
        with open(p, "w") as f:
            json.dump({"fib.native_ms": 1.0, "fib.native_rss_kb": 5,
                       "fib.checksum_ok": 1}, f)
        probs = smoke_check(p, ["fib"], ["native"])
        expect(len(probs) == len(MICRO_REQUIRED), "smoke_check finds gaps")
    res = {"p": {"native": {"ms": 11.0}, "node": {"ms": 140.0}}}
    net = net_geomeans(res, {"native": {"ms": 1.0}, "node": {"ms": 100.0}})
    expect(net == {"geomean_net.node_over_native": 4.0},
           "net geomeans subtract start-up: %r" % net)
    fails += flow_selftest()
    sys.path.insert(0, os.path.join(HERE, "deploy"))
    import deploy
    fails += deploy.selftest()
    for f in fails:
        print("selftest FAILED: " + f)
    if not fails:
        print("run.py selftest: all checks passed")
    return 1 if fails else 0


# ---------------------------------------------------------------------------
# Flow engine benchmarks (bench/flows/): `isoflow run FLOW --duration D
# --quiet --stats-json FILE`, alternating the flows, BENCH_REPS times; medians
# of the rate through the reported stage, the end-to-end p50/p99 and the peak
# RSS; then push runs at half the rate each flow sustains (capped at half its
# target) for the latency target.  BENCH_ONLY=flows (or --only flows) runs
# only this part.

FLOWS_DIR = os.path.join(HERE, "flows")
# Seconds per run (BENCH_FLOW_SECONDS overrides; --smoke: 1 s).
FLOW_SECONDS = 5.0
# Every push flow produces every 1 ms per device: offered rate = devices x
# 1000 x time-scale.
FLOW_PUSH_PER_DEVICE = 1000.0

# name -> (flow file, device group, devices, offered push rate or None for
# demand, stage whose input rate is the figure, what that figure counts).
FLOWS = {
    "pipeline3.demand": ("pipeline3_demand.flow", "dev", 2, None, "p3",
                         "msg/s through 3 trivial Wasm stages"),
    "pipeline3.push": ("pipeline3_push.flow", "dev", 100, "target", "p3",
                       "msg/s through 3 trivial Wasm stages"),
    "home.demand": ("home_demand.flow", "rooms", 100, None, "clean",
                    "readings/s ingested by the edge"),
    "home.push": ("home_push.flow", "rooms", 100, "target", "clean",
                  "readings/s ingested by the edge"),
}
# family -> (throughput target, label); p99 target at half rate.
FLOW_TARGETS = {"pipeline3": (1000000.0, "3 trivial Wasm stages"),
                "home": (200000.0, "home flow, device->edge")}
FLOW_P99_TARGET_US = 1000.0
FLOW_SMOKE = ["pipeline3.demand"]
# Keys every `isoflow run --stats-json` object must have.
FLOW_STATS_KEYS = ("elapsed_s", "produced", "delivered", "e2e_p50_us",
                   "e2e_p99_us", "stages")
FLOW_STAGE_KEYS = ("name", "layer", "in", "out", "dropped", "errors",
                   "traps", "rate", "p50_us", "p99_us")


def flow_push_args(rate, devices):
    """Arguments making a push flow (every 1 ms per device) offer `rate`
    messages per second with `devices` devices: the time scale."""
    if rate <= 0 or devices <= 0:
        raise ValueError("push rate and devices must be positive")
    return ["--time-scale", "%.6g" % (rate / (devices * FLOW_PUSH_PER_DEVICE))]


def flow_check_stats(stats, expect_stages):
    """Checks a parsed --stats-json object: every top-level and per-stage key
    present and numeric where it must be, the stages named in expect_stages
    present.  Returns a list of problems (empty when fine)."""
    problems = []
    for k in FLOW_STATS_KEYS:
        if k not in stats:
            problems.append("stats JSON has no " + k)
    stages = stats.get("stages")
    if not isinstance(stages, list):
        return problems + ["stats JSON: stages is not a list"]
    names = []
    for st in stages:
        for k in FLOW_STAGE_KEYS:
            if k not in st:
                problems.append("stage %s has no %s" % (st.get("name"), k))
            elif k not in ("name", "layer") and \
                    not isinstance(st[k], (int, float)):
                problems.append("stage %s: %s is not a number"
                                % (st.get("name"), k))
        names.append(st.get("name"))
    for n in expect_stages:
        if n not in names:
            problems.append("stats JSON has no stage " + n)
    return problems


def flow_stage(stats, name):
    """The per-stage object called name in a --stats-json object."""
    for st in stats["stages"]:
        if st["name"] == name:
            return st
    raise BenchError("stats JSON has no stage %r" % name)


def flow_figures(stats, rate_stage, wall_s, rss_kb):
    """The figures of one run: msgs (input rate of rate_stage over the run),
    produced/s, e2e p50/p99, dropped, errors, peak RSS, and each stage's
    processing p50/p99."""
    st = flow_stage(stats, rate_stage)
    elapsed = stats["elapsed_s"] or wall_s
    fig = {"msgs": st["rate"],
           "produced_per_s": stats["produced"] / elapsed if elapsed else 0,
           "p50_us": stats["e2e_p50_us"], "p99_us": stats["e2e_p99_us"],
           "dropped": sum(s["dropped"] for s in stats["stages"]),
           "errors": sum(s["errors"] for s in stats["stages"]),
           "rss_kb": rss_kb}
    for s in stats["stages"]:
        if s["in"] or s["out"]:
            fig["stage.%s.p50_us" % s["name"]] = s["p50_us"]
            fig["stage.%s.p99_us" % s["name"]] = s["p99_us"]
    return fig


def flow_run(name, extra, seconds, paths, scratch, log):
    """Runs one flow benchmark once: copies bench/flows/<file> into the
    scratch directory (with `built` linked to BUILD/stages and an out/ for
    the jsonl stores), runs `isoflow run` through bench_spawn and returns
    (stats object, wall seconds, peak RSS KiB).  Raises BenchError when the
    run fails or its stats JSON is incomplete."""
    flow_file, group, devices, _, rate_stage, _ = FLOWS[name]
    flow_path = os.path.join(scratch, flow_file)
    if not os.path.exists(flow_path):
        shutil.copyfile(os.path.join(FLOWS_DIR, flow_file), flow_path)
    stats_path = os.path.join(scratch, "stats.json")
    if os.path.exists(stats_path):
        os.remove(stats_path)
    cmd = paths["isoflow"] + [
        "run", flow_path, "--duration", "%g" % seconds, "--quiet",
        "--devices", "%s=%d" % (group, devices),
        "--dead-letter", os.path.join(scratch, "deadletter.jsonl"),
        "--stats-json", stats_path] + extra
    code, out, err, wall, rss = spawn_once(cmd, paths["spawn"])
    if code != 0 or not os.path.exists(stats_path):
        raise BenchError("%s (%s) failed with exit %d: %s"
                         % (name, " ".join(cmd), code,
                            (err.strip() or out.strip())[-300:]))
    with open(stats_path) as f:
        stats = json.load(f)
    problems = flow_check_stats(stats, [rate_stage])
    if problems:
        raise BenchError("%s: %s" % (name, "; ".join(problems)))
    log("  %-17s %s: %s/s, e2e p50 %.0f us p99 %.0f us, %.1f MB"
        % (name, " ".join(extra) or "-", fmt_rate(flow_stage(
            stats, rate_stage)["rate"]), stats["e2e_p50_us"],
           stats["e2e_p99_us"], rss / 1024.0))
    return stats, wall, rss


def fmt_rate(v):
    """A rate with thousands separators (no decimals)."""
    return "{:,.0f}".format(v)


def flow_medians(runs):
    """Medians, key by key, of a list of figure dicts (keys missing from a
    run are taken over the runs that have them)."""
    keys = sorted({k for r in runs for k in r})
    return {k: median([r[k] for r in runs if k in r]) for k in keys}


def flow_offered(name):
    """The offered push rate of a push benchmark (its family's target)."""
    return FLOW_TARGETS[name.split(".")[0]][0]


def run_flows(paths, reps, seconds, names, log):
    """Runs the flow benchmarks `names` reps times each, rotating their order
    every repetition, then the half-rate push runs of their families.
    Returns (results: name -> median figures, failures: list of texts)."""
    results, failures = {}, []
    runs = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="isoflow-bench-flows-") as scr:
        os.symlink(os.path.join(paths["build"], "stages"),
                   os.path.join(scr, "built"))
        os.mkdir(os.path.join(scr, "out"))
        for rep in range(reps):
            k = rep % len(names)
            for name in names[k:] + names[:k]:
                flow_file, _, devices, push, rate_stage, _ = FLOWS[name]
                extra = (flow_push_args(flow_offered(name), devices)
                         if push else [])
                try:
                    stats, wall, rss = flow_run(name, extra, seconds, paths,
                                                scr, log)
                except BenchError as e:
                    failures.append(str(e))
                    print("  FAILED: %s" % e, flush=True)
                    continue
                fig = flow_figures(stats, rate_stage, wall, rss)
                if push:
                    fig["offered"] = flow_offered(name)
                runs[name].append(fig)
        for name in names:
            if runs[name]:
                results[name] = flow_medians(runs[name])
        # Latency at half rate: push at half of what the family sustained
        # (its best median), capped at half its target.
        for fam in sorted({n.split(".")[0] for n in names}):
            best = max([results[n]["msgs"] for n in results
                        if n.split(".")[0] == fam] or [0])
            push = fam + ".push"
            if best <= 0 or push not in FLOWS:
                continue
            rate = min(best, FLOW_TARGETS[fam][0]) / 2.0
            devices, rate_stage = FLOWS[push][2], FLOWS[push][4]
            half = []
            for rep in range(reps):
                try:
                    stats, wall, rss = flow_run(
                        push, flow_push_args(rate, devices), seconds, paths,
                        scr, log)
                except BenchError as e:
                    failures.append("%s at half rate: %s" % (fam, e))
                    print("  FAILED: %s" % e, flush=True)
                    break
                fig = flow_figures(stats, rate_stage, wall, rss)
                fig["offered"] = rate
                half.append(fig)
            if half:
                results[fam + ".half"] = flow_medians(half)
    return results, failures


def flow_data(results):
    """The flat JSON figures (flow.<name>.<figure>) of run_flows' results,
    rounded."""
    data = {}
    for name, fig in results.items():
        for k, v in fig.items():
            data["flow.%s.%s" % (name, k)] = round(v, 2)
    return data


def print_flows(results, seconds, reps):
    """Prints the flow table, the targets with pass/miss and the per-stage
    processing times of the home flow."""
    print()
    print("Flow engine (isoflow run, %g s per run, median of %d, on %d "
          "cores)" % (seconds, reps, os.cpu_count() or 0))
    head = "%-17s %-36s %12s %11s %11s %9s %8s" % (
        "flow", "figure", "rate/s", "e2e p50 us", "e2e p99 us", "dropped",
        "RSS MB")
    print(head)
    print("-" * len(head))
    for name, fig in results.items():
        if name.endswith(".half"):
            what = "at %s/s offered (push)" % fmt_rate(fig["offered"])
        else:
            what = FLOWS[name][5]
            if "offered" in fig:
                what = "%s (%s/s offered)" % (
                    what.split(" through")[0].split(" ingested")[0],
                    fmt_rate(fig["offered"]))
        print("%-17s %-36s %12s %11.0f %11.0f %9.0f %8.1f"
              % (name, what, fmt_rate(fig["msgs"]), fig["p50_us"],
                 fig["p99_us"], fig["dropped"], fig["rss_kb"] / 1024.0))
    print()
    print("Targets (benchmarks, not timed tests)")
    for fam, (target, label) in FLOW_TARGETS.items():
        for mode in ("demand", "push"):
            fig = results.get("%s.%s" % (fam, mode))
            if fig:
                # A push run offers exactly the target rate: sustaining it
                # (within 1 %: the measuring window's edges) with nothing
                # dropped is meeting it.
                if mode == "push" and fig["msgs"] < target:
                    ok = fig["msgs"] >= 0.99 * target and not fig["dropped"]
                    verdict = ("met (the offered rate, 0 dropped)" if ok
                               else "MISSED")
                else:
                    verdict = "met" if fig["msgs"] >= target else "MISSED"
                print("  %-40s %12s/s  target >= %s/s  %s"
                      % ("%s, %s" % (label, mode), fmt_rate(fig["msgs"]),
                         fmt_rate(target), verdict))
        fig = results.get(fam + ".half")
        if fig:
            print("  %-40s %9.0f us  target < %g us at %s/s  %s"
                  % ("%s, e2e p99 at half rate" % label, fig["p99_us"],
                     FLOW_P99_TARGET_US, fmt_rate(fig["offered"]),
                     "met" if fig["p99_us"] < FLOW_P99_TARGET_US
                     else "MISSED"))
    for name in ("home.demand", "pipeline3.demand"):
        fig = results.get(name)
        if not fig:
            continue
        per = [(k.split(".")[1], v) for k, v in sorted(fig.items())
               if k.startswith("stage.") and k.endswith(".p50_us")]
        print("  per-stage processing p50 in %s: %s"
              % (name, ", ".join("%s %.2f us" % (s, v) for s, v in per)))


def flow_smoke_check(path, names):
    """Re-reads the JSON written by a flow --smoke run: every figure of
    every benchmark there, rates and RSS positive.  Returns problems."""
    with open(path) as f:
        data = json.load(f)
    problems = []
    for name in names:
        for k in ("msgs", "produced_per_s", "rss_kb"):
            v = data.get("flow.%s.%s" % (name, k))
            if not isinstance(v, (int, float)) or v <= 0:
                problems.append("missing or non-positive flow.%s.%s"
                                % (name, k))
        for k in ("p50_us", "p99_us", "dropped", "errors"):
            if not isinstance(data.get("flow.%s.%s" % (name, k)),
                              (int, float)):
                problems.append("missing flow.%s.%s" % (name, k))
        if data.get("flow.%s.errors" % name):
            problems.append("flow.%s.errors is not 0" % name)
    return problems


def flow_smoke_pipeline(paths):
    """The smoke run's behaviour check: pipeline3_demand for ~1 s, then every
    message the source produced went through p1, p2, p3 into the sink
    unchanged in number, with nothing dropped and no error.  Returns
    problems."""
    problems = []
    with tempfile.TemporaryDirectory(prefix="isoflow-bench-smoke-") as scr:
        os.symlink(os.path.join(paths["build"], "stages"),
                   os.path.join(scr, "built"))
        stats, _, _ = flow_run("pipeline3.demand", [], 1.0, paths, scr,
                               lambda s: None)
    problems += flow_check_stats(stats, ["src", "p1", "p2", "p3", "sink"])
    if problems:
        return problems
    n = flow_stage(stats, "src")["out"]
    if n <= 0 or stats["produced"] != n:
        problems.append("src produced %d (total %d)" % (n, stats["produced"]))
    for s in ("p1", "p2", "p3"):
        st = flow_stage(stats, s)
        if st["in"] != n or st["out"] != n:
            problems.append("%s: in %d out %d, expected %d each"
                            % (s, st["in"], st["out"], n))
    if flow_stage(stats, "sink")["in"] != n or stats["delivered"] != n:
        problems.append("sink got %d, delivered %d, expected %d"
                        % (flow_stage(stats, "sink")["in"],
                           stats["delivered"], n))
    for st in stats["stages"]:
        if st["dropped"] or st["errors"] or st["traps"]:
            problems.append("%s: dropped %d errors %d traps %d"
                            % (st["name"], st["dropped"], st["errors"],
                               st["traps"]))
    return problems


def flows_main(args, paths):
    """The flow part of a `make bench` (or the whole of BENCH_ONLY=flows /
    --only flows, which merges its figures into an existing results file).
    Returns (data, failures)."""
    needed = [paths["spawn"]] + [os.path.join(paths["build"], "stages", f)
                                 for f in ("bench_src.wasm",
                                           "bench_pass.wasm",
                                           "room_sensor.wasm")]
    if not args.isoflow:
        needed.append(paths["isoflow"][0])
    missing = [n for n in needed if not os.path.exists(n)]
    if missing:
        return {}, ["not built (run `make build` first): "
                    + ", ".join(missing)]
    reps = 1 if args.smoke else max(1, args.reps)
    seconds = 1.0 if args.smoke else float(
        os.environ.get("BENCH_FLOW_SECONDS") or FLOW_SECONDS)
    names = FLOW_SMOKE if args.smoke else list(FLOWS)
    verbose = bool(os.environ.get("BENCH_VERBOSE"))
    log = (lambda s: print(s, flush=True)) if verbose else (lambda s: None)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print("isoflow flow benchmarks: %d flow(s), %d repetition(s) of %g s, "
          "then half-rate push runs (load average %.2f at start)"
          % (len(names), reps, seconds, load), flush=True)
    t0 = time.perf_counter()
    results, failures = run_flows(paths, reps, seconds, names, log)
    data = flow_data(results)
    data["flow.seconds"] = seconds
    data["flow.loadavg_start"] = round(load, 2)
    data["flow.total_s"] = round(time.perf_counter() - t0, 1)
    if results:
        print_flows(results, seconds, reps)
    if args.smoke and not failures:
        try:
            failures += flow_smoke_pipeline(paths)
        except BenchError as e:
            failures.append(str(e))
    return data, failures


def flow_selftest():
    """Checks the flow helpers; returns a list of failure texts."""
    fails = []
    if flow_push_args(500000, 100) != ["--time-scale", "5"]:
        fails.append("flow_push_args 500k/100 devices")
    if flow_push_args(12000, 100) != ["--time-scale", "0.12"]:
        fails.append("flow_push_args 12k/100 devices")
    stats = {"elapsed_s": 2.0, "produced": 10, "delivered": 10,
             "e2e_p50_us": 5.0, "e2e_p99_us": 9.0,
             "stages": [{"name": "a", "layer": "edge", "in": 0, "out": 10,
                         "dropped": 1, "errors": 0, "traps": 0, "rate": 5.0,
                         "p50_us": 1.0, "p99_us": 2.0},
                        {"name": "b", "layer": "edge", "in": 10, "out": 0,
                         "dropped": 2, "errors": 0, "traps": 0, "rate": 5.0,
                         "p50_us": 3.0, "p99_us": 4.0}]}
    if flow_check_stats(stats, ["a", "b"]):
        fails.append("flow_check_stats rejects good stats")
    if flow_check_stats(stats, ["c"]) != ["stats JSON has no stage c"]:
        fails.append("flow_check_stats misses a stage")
    fig = flow_figures(stats, "b", 2.0, 100)
    if (fig["msgs"], fig["produced_per_s"], fig["dropped"], fig["p99_us"],
            fig["stage.a.p50_us"]) != (5.0, 5.0, 3, 9.0, 1.0):
        fails.append("flow_figures: %r" % fig)
    m = flow_medians([{"msgs": 1, "x": 4}, {"msgs": 3}, {"msgs": 2}])
    if m != {"msgs": 2, "x": 4}:
        fails.append("flow_medians: %r" % m)
    if flow_data({"p.half": {"p99_us": 1.234}}) != \
            {"flow.p.half.p99_us": 1.23}:
        fails.append("flow_data")
    return fails


# Node benchmarks (bench/nodes/nodes.py, "Nodes" in bench/RESULTS.md):
# device -> edge -> cloud `isoflow node` processes over mutual TLS on
# loopback (throughput, end-to-end p50/p99 measured by a cloud sink stage,
# CPU per node) and the device connections one edge holds at 1 msg/s each.
# BENCH_ONLY=nodes (or --only nodes) runs only them and merges nodes.*
# figures into an existing results file; BENCH_NODE_SECONDS sets the
# seconds per throughput run (default 8).

def nodes_section(args, build):
    """Runs the node benchmarks and prints their table; returns (flat
    nodes.* figures, failures)."""
    sys.path.insert(0, os.path.join(HERE, "nodes"))
    import nodes
    iso = shlex.split(args.isoflow) if args.isoflow else \
        [os.path.join(build, "isoflow")]
    stages = os.path.join(build, "stages")
    if not os.path.exists(os.path.join(stages, "bench_pass.wasm")):
        return {}, ["not built (run `make build` first): " + stages]
    seconds = float(os.environ.get("BENCH_NODE_SECONDS") or 8)
    print("isoflow node benchmarks: cloud, edge and %d device processes "
          "over TLS, %g s per run; then device connections"
          % (nodes.DEVICES, seconds), flush=True)
    t0 = time.perf_counter()
    data, failures, notes = nodes.nodes_main(
        iso, stages, seconds, args.smoke, lambda s: print(s, flush=True))
    data["nodes.total_s"] = round(time.perf_counter() - t0, 1)
    best = data.get("nodes.max_msgs", 0)
    print("\nNodes: %s msg/s best at the cloud (target >= 300,000): %s"
          % (fmt_rate(best), "met" if best >= 300000 else "MISSED"))
    if "nodes.half.p99_us" in data:
        p99 = data["nodes.half.p99_us"]
        print("Nodes: e2e p99 %.0f us at %s msg/s offered (target < 10 ms "
              "at half of 300,000): %s"
              % (p99, fmt_rate(data["nodes.half.offered"]),
                 "met" if p99 < 10000 and best >= 300000 else "MISSED"))
    for n in nodes.CONNECTIONS:
        k = "nodes.conn_%d." % n
        if k + "connected" in data:
            print("Nodes: %d devices: %d connected, edge %.1f%% of a core, "
                  "%.1f MB" % (n, data[k + "connected"],
                               data[k + "edge_cpu_pct"],
                               data[k + "edge_rss_kb"] / 1024.0))
    for s in notes:
        print("Nodes: " + s)
    return data, failures


def nodes_cli(args, build):
    """BENCH_ONLY=nodes: the node benchmarks alone, merged into --out."""
    data, failures = nodes_section(args, build)
    if data:
        write_results(args.out, data, not args.smoke)
        print("\nwrote %s (%d node figures)" % (args.out, len(data)))
    for f in failures:
        print("run.py: " + f, file=sys.stderr)
    return 1 if failures else 0


# Live update vs a firmware-style update (bench/deploy/deploy.py, "Live
# update vs firmware-style update" in bench/RESULTS.md): cloud + edge + one
# device node over TLS; (a) rebuild isoflow-fw with the new stage compiled
# in, replace the binary, restart the node, until the first message of the
# new version reaches the sink; (b) `isoflow deploy --wait first`, cold
# (--no-agent) and through `isoflow agent` (deploy.agent_*);
# alternating, BENCH_DEPLOY_REPS (default 5) each, medians; figures
# deploy.*.  BENCH_ONLY=deploy (or --only deploy) runs only it and merges
# them into an existing results file; BENCH_DEPLOY_PLACE=edge puts the
# stage on the edge instead of the device; BENCH_DEPLOY_PARTS=a (or b) runs
# one side only.

DEPLOY_TARGET_MS = 50.0
DEPLOY_TARGET_PCT = 1.0


def deploy_section(args, build):
    """Runs the live-update benchmark and prints its table; returns (flat
    deploy.* figures, failures)."""
    sys.path.insert(0, os.path.join(HERE, "deploy"))
    import deploy
    iso = shlex.split(args.isoflow) if args.isoflow else \
        [os.path.join(build, "isoflow")]
    needed = [iso[0]] + [os.path.join(build, "stages", s) for s in
                         ("bench_src.wasm", "bench_pass.wasm")]
    missing = [n for n in needed if not os.path.exists(n)]
    if missing:
        return {}, ["not built (run `make build` first): "
                    + ", ".join(missing)]
    reps = 1 if args.smoke else max(1, int(
        os.environ.get("BENCH_DEPLOY_REPS") or 5))
    place = os.environ.get("BENCH_DEPLOY_PLACE") or "dev"
    parts = tuple((os.environ.get("BENCH_DEPLOY_PARTS") or "a,b").split(","))
    if not parts or any(p not in ("a", "b") for p in parts):
        return {}, ["BENCH_DEPLOY_PARTS: expected a, b or a,b, got %r"
                    % ",".join(parts)]
    if place not in ("dev", "edge"):
        return {}, ["BENCH_DEPLOY_PLACE: expected dev or edge, got %r"
                    % place]
    where = "dev-0 (device)" if place == "dev" else "edge"
    print("isoflow live-update benchmark: stage %s on %s, cloud + edge + 1 "
          "device over TLS, %d repetition(s) of each, alternating"
          % ("tiny" if args.smoke else "xform", where, reps), flush=True)
    t0 = time.perf_counter()
    data, failures, notes = deploy.deploy_main(
        iso, build, reps, args.smoke, lambda s: print(s, flush=True),
        parts=parts, place=place)
    data["deploy.total_s"] = round(time.perf_counter() - t0, 1)
    d = data
    if "deploy.fw_total_s" in d and "deploy.cmd_ms" in d:
        print()
        print("Live update vs firmware-style update (median of %d, stage on "
              "%s)" % (reps, where))
        head = "%-46s %12s  %s" % ("update", "time", "parts")
        print(head)
        print("-" * (len(head) + 40))
        print("%-46s %10.2f s  build %.2f s, install %.1f ms, stop %.2f s, "
              "restart to first message %.0f ms"
              % ("(a) firmware-style: rebuild, replace, restart",
                 d["deploy.fw_total_s"], d["deploy.fw_build_s"],
                 d["deploy.fw_install_ms"], d["deploy.fw_stop_s"],
                 d["deploy.fw_restart_s"] * 1e3))
        print("%-46s %9.1f ms  command's start to the first message "
              "processed by the new version (node's clock); the command "
              "returned after %.1f ms; node: request to first message "
              "%.1f ms; %d of %d resumed the operator's TLS session%s"
              % ("(b) isoflow deploy --wait first, cold",
                 d["deploy.first_ms"],
                 d["deploy.cmd_ms"], d["deploy.node_ms"],
                 d.get("deploy.resumed_runs", 0), reps,
                 "" if "deploy.first_full_handshake_ms" not in d else
                 " (full handshake: %.1f ms)"
                 % d["deploy.first_full_handshake_ms"]))
        if "deploy.agent_first_ms" in d:
            print("%-46s %9.1f ms  the same through a running `isoflow "
                  "agent` (links up): returned after %.1f ms; node: %.1f "
                  "ms; slowest %.1f ms"
                  % ("(b') isoflow deploy, through the agent",
                     d["deploy.agent_first_ms"], d["deploy.agent_cmd_ms"],
                     d["deploy.agent_node_ms"],
                     d["deploy.agent_first_max_ms"]))
        print("artefacts: module %s B, binary (isoflow-fw) %s B (%.1fx)"
              % (fmt_rate(d["deploy.module_bytes"]),
                 fmt_rate(d["deploy.binary_bytes"]),
                 d["deploy.binary_bytes"] / float(d["deploy.module_bytes"])))
        for how, k in (("cold", "deploy."),
                       ("through the agent", "deploy.agent_")):
            if k + "first_ms" not in d:
                continue
            print("Deploy, %s: p50 %.1f ms (target < %g ms): %s"
                  % (how, d[k + "first_ms"], DEPLOY_TARGET_MS,
                     "met" if d[k + "first_ms"] < DEPLOY_TARGET_MS
                     else "MISSED"))
            print("Deploy, %s: %.2f %% of the firmware-style update "
                  "(target < %g %%): %s"
                  % (how, d[k + "ratio_pct"], DEPLOY_TARGET_PCT,
                     "met" if d[k + "ratio_pct"] < DEPLOY_TARGET_PCT
                     else "MISSED"))
        print("  notes: firmware build from scratch %.1f s (configure + "
              "build isoflow-fw, once); building and signing each module "
              "(isoflow build, not counted in (b)) %.2f s"
              % (d["deploy.fw_full_build_s"], d["deploy.module_build_s"]))
    for s in notes:
        print("Deploy: " + s)
    if args.smoke and not failures:
        failures += deploy.smoke_problems(data, parts)
        if not failures and len(parts) == 2:
            print("bench-smoke deploy: firmware-style update %.2f s, "
                  "isoflow deploy %.1f ms cold and %.1f ms through the "
                  "agent measured; JSON complete"
                  % (d["deploy.fw_total_s"], d["deploy.first_ms"],
                     d["deploy.agent_first_ms"]))
    return data, failures


def deploy_cli(args, build):
    """BENCH_ONLY=deploy: the live-update benchmark alone, merged into
    --out."""
    data, failures = deploy_section(args, build)
    if data:
        write_results(args.out, data, not args.smoke)
        print("\nwrote %s (%d deploy figures)" % (args.out, len(data)))
    for f in failures:
        print("run.py: " + f, file=sys.stderr)
    return 1 if failures else 0


def write_results(path, data, merge):
    """Writes the flat JSON results to path; with merge, keeps the figures
    already there except those of the same part (flow.* keys when data holds
    flow figures)."""
    old = {}
    if merge and os.path.exists(path):
        try:
            part = ("deploy." if any(k.startswith("deploy.") for k in data)
                    else "nodes." if any(k.startswith("nodes.") for k in data)
                    else "flow.")
            with open(path) as f:
                old = {k: v for k, v in json.load(f).items()
                       if not k.startswith(part)}
        except (OSError, ValueError):
            old = {}
    old.update(data)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(old, f, indent=1, sort_keys=True)
        f.write("\n")
    return old


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"),
                    help="CMake build directory (default build/release)")
    ap.add_argument("--reps", type=int,
                    default=int(os.environ.get("BENCH_REPS", "3") or 3))
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench",
                                                  "results.json"))
    ap.add_argument("--programs", help="comma-separated subset")
    ap.add_argument("--runtimes", help="comma-separated subset of "
                    + ",".join(RUNTIMES))
    ap.add_argument("--isoflow", help="command replacing "
                    "'BUILD/isoflow' (split like a shell)")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny sizes, 1 repetition, then check the JSON")
    ap.add_argument("--selftest", action="store_true")
    ap.add_argument("--only", choices=("all", "programs", "flows", "nodes",
                                       "deploy"),
                    default=os.environ.get("BENCH_ONLY") or "all",
                    help="run only the programs+micro part or only the flow "
                    "benchmarks (default: $BENCH_ONLY, else all)")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    if args.selftest:
        return selftest(os.path.join(build, "bench", "bench_spawn"))
    if args.only == "deploy":
        return deploy_cli(args, build)
    if args.only == "nodes":
        return nodes_cli(args, build)
    if args.only == "flows":
        paths = {"build": build,
                 "spawn": os.path.join(build, "bench", "bench_spawn"),
                 "isoflow": shlex.split(args.isoflow) if args.isoflow
                 else [os.path.join(build, "isoflow")]}
        data, failures = flows_main(args, paths)
        if data:
            write_results(args.out, data, not args.smoke)
            print("\nwrote %s (%d flow figures)" % (args.out, len(data)))
        if args.smoke and not failures:
            failures += flow_smoke_check(args.out,
                                         FLOW_SMOKE + ["pipeline3.half"])
            if not failures:
                print("bench-smoke flows: %s and the half-rate push ran; "
                      "every message through p1..p3 into the sink; JSON "
                      "complete" % ", ".join(FLOW_SMOKE))
        for f in failures:
            print("run.py: " + f, file=sys.stderr)
        return 1 if failures else 0

    node = shutil.which("node")
    paths = {"bench": os.path.join(build, "bench"), "node": node,
             "build": build,
             "spawn": os.path.join(build, "bench", "bench_spawn"),
             "isoflow": shlex.split(args.isoflow) if args.isoflow
             else [os.path.join(build, "isoflow")]}
    programs = (args.programs.split(",") if args.programs
                else SMOKE_PROGRAMS if args.smoke else list(PROGRAMS))
    runtimes = args.runtimes.split(",") if args.runtimes else list(RUNTIMES)
    for p in programs:
        if p not in PROGRAMS:
            print("run.py: unknown program %r" % p, file=sys.stderr)
            return 2
    for rt in runtimes:
        if rt not in RUNTIMES:
            print("run.py: unknown runtime %r" % rt, file=sys.stderr)
            return 2
    if "node" in runtimes and not node:
        if not args.smoke:
            print("run.py: node not found (install nodejs, or pass "
                  "--runtimes native,isoflow)", file=sys.stderr)
            return 1
        runtimes.remove("node")
    needed = [paths["spawn"], os.path.join(paths["bench"], "bench_engine")]
    needed += [os.path.join(paths["bench"], "native", p) for p in programs]
    needed += [os.path.join(paths["bench"], "wasm", p + ".wasm")
               for p in programs + ["micro_guest", "load_guest"]]
    if "isoflow" in runtimes and not args.isoflow:
        needed.append(paths["isoflow"][0])
    missing = [n for n in needed if not os.path.exists(n)]
    if missing:
        print("run.py: not built (run `make build` first): "
              + ", ".join(missing), file=sys.stderr)
        return 1
    reps = 1 if args.smoke else max(1, args.reps)
    sizes = {p: PROGRAMS[p][1 if args.smoke else 0] for p in programs}

    t_start = time.perf_counter()
    verbose = bool(os.environ.get("BENCH_VERBOSE"))
    log = (lambda s: print(s, flush=True)) if verbose else (lambda s: None)
    print("isoflow benchmarks: %d program(s) x %s, %d repetition(s), "
          "alternating runtimes" % (len(programs), "/".join(runtimes), reps),
          flush=True)

    data = {"bench.reps": reps}
    results = {}
    failures = []
    for name in programs:
        print("  running %s %s ..." % (name, sizes[name]), flush=True)
        try:
            res = bench_program(name, sizes[name], runtimes, reps, paths, log)
        except BenchError as e:
            failures.append(str(e))
            print("  FAILED: %s" % e, flush=True)
            data[name + ".checksum_ok"] = 0
            continue
        results[name] = res
        data[name + ".size"] = float(sizes[name])
        data[name + ".checksum_ok"] = 1
        for rt, r in res.items():
            data["%s.%s_ms" % (name, rt)] = round(r["ms"], 3)
            data["%s.%s_rss_kb" % (name, rt)] = r["rss_kb"]
        for a, b in (("isoflow", "native"), ("node", "native"),
                     ("isoflow", "node")):
            if a in res and b in res:
                data["%s.%s_over_%s" % (name, a, b)] = round(
                    res[a]["ms"] / res[b]["ms"], 4)

    # Start-up cost of each runtime (fib 1: load, instantiate, print, exit),
    # included in every figure above; not part of the geomeans.
    try:
        start = bench_program("fib", "1", runtimes, reps, paths, log)
        for rt, r in start.items():
            data["startup.%s_ms" % rt] = round(r["ms"], 3)
    except BenchError as e:
        failures.append("startup: %s" % e)
        start = {}

    print()
    if results:
        data.update({k: round(v, 4) for k, v in
                     print_table(results, runtimes, sizes).items()})
    if start:
        print("start-up (fib 1, included above): "
              + ", ".join("%s %.1f ms" % (rt, start[rt]["ms"])
                          for rt in runtimes))
        net = net_geomeans(results, start)
        data.update({k: round(v, 4) for k, v in net.items()})
        if net:
            print("geomeans with each runtime's start-up subtracted: "
                  + ", ".join("%s %.2f" % (k[len("geomean_net."):]
                                           .replace("_over_", "/"), v)
                              for k, v in sorted(net.items())))
    try:
        fig, notes = run_engine(paths, args.smoke)
        data.update(fig)
        print_micro(fig, notes)
    except BenchError as e:
        failures.append(str(e))
        print("FAILED: %s" % e)

    if args.only == "all" and not args.smoke:
        fdata, ffail = flows_main(args, paths)
        data.update(fdata)
        failures += ffail
        ndata, nfail = nodes_section(args, build)
        data.update(ndata)
        failures += nfail
        ddata, dfail = deploy_section(args, build)
        data.update(ddata)
        failures += dfail

    data["bench.total_s"] = round(time.perf_counter() - t_start, 1)
    data["bench.failures"] = len(failures)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    print("\nwrote %s (%d figures) in %.0f s" % (args.out, len(data),
                                                 data["bench.total_s"]))
    if args.smoke and not failures:
        problems = smoke_check(args.out, programs, runtimes)
        failures += problems
        if not problems:
            print("bench-smoke: %d program(s) agree across %s; JSON complete"
                  % (len(programs), "/".join(runtimes)))
    for f in failures:
        print("run.py: " + f, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
