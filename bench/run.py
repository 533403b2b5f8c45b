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
    for f in fails:
        print("selftest FAILED: " + f)
    if not fails:
        print("run.py selftest: all checks passed")
    return 1 if fails else 0


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
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    if args.selftest:
        return selftest(os.path.join(build, "bench", "bench_spawn"))

    node = shutil.which("node")
    paths = {"bench": os.path.join(build, "bench"), "node": node,
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
