"""nodes.py - the node benchmarks of `make bench` (stdlib only; run.py's
"nodes" section calls it, BENCH_ONLY=nodes runs only it).

1. Throughput device -> edge -> cloud over mutual TLS on loopback: a cloud,
   an edge and K device `isoflow node` processes with certificates from
   `isoflow ca`; the device source is bench_src, the edge runs bench_pass,
   the cloud sink is bench/nodes/stages/lat.c (built here with `isoflow
   build`), which measures now - production time of every message over a
   fixed window and logs the count and p50/p99.  Demand mode flat out, push
   at increasing rates, then push at half the best rate for the p99 target.
   CPU per node from wait4 (user+system over the run).
2. Device connections one edge holds at 1 msg/s each: N device processes
   (one `isoflow node` per device, --workers 1), edge CPU (% of one core
   from /proc/PID/stat over a steady window) and RSS; stops at the first N
   this machine cannot start.
"""

import os
import re
import resource
import shutil
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")

FLOW = """devices dev "dev-%d" x {n} connect edge
node cloud @cloud listen "127.0.0.1:{pc}"
node edge  @edge  listen "127.0.0.1:{pe}" connect cloud
stage src  @dev   wasm "{stages}/bench_src.wasm"
stage p1   @edge  wasm "{stages}/bench_pass.wasm"
stage lat  @cloud wasm "{lat}" config "skip={skip} window={window}"
flow f: {mode} ~> [p1, lat]
"""
LAT_RE = re.compile(r"nodes-lat n=(\d+) p50_us=(\d+) p99_us=(\d+) "
                    r"max_us=(\d+) final=1")


class NodeBenchError(Exception):
    """A node benchmark could not run."""


def flow_text(n, pc, pe, stages, lat, mode, skip, window):
    """The flow file of a run: n devices, cloud/edge ports, source mode
    ('push(src every 1ms)' or 'demand(src credits N)')."""
    return FLOW.format(n=n, pc=pc, pe=pe, stages=stages, lat=lat, mode=mode,
                       skip=skip, window=window)


def parse_lat(text):
    """(count, p50_us, p99_us, max_us) of the final nodes-lat line in a
    cloud log, or None."""
    found = LAT_RE.findall(text)
    return tuple(int(x) for x in found[-1]) if found else None


def proc_cpu_rss(pid):
    """(user+system CPU seconds, RSS KiB) of a live process from /proc."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / float(TICK)
    rss = int(fields[21]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    return cpu, rss


def established(port):
    """The number of established TCP connections whose local port is port
    (IPv4, from /proc/net/tcp): the device links an edge holds."""
    n = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[3] == "01" and int(parts[1].split(":")[1], 16) == port:
                n += 1
    return n


class Cluster:
    """A scratch directory with a CA, certificates for cloud, edge and n
    devices, and the processes started in it."""

    def __init__(self, isoflow, stages, scratch, n):
        self.iso, self.stages, self.dir, self.n = isoflow, stages, scratch, n
        self.procs = {}
        self.certs = os.path.join(scratch, "certs")
        ca = os.path.join(scratch, "ca")
        if not os.path.exists(ca):
            self._run(["ca", "init", ca])
            os.makedirs(self.certs, exist_ok=True)
            shutil.copyfile(os.path.join(ca, "ca.crt"),
                            os.path.join(self.certs, "ca.crt"))
        self.lat = os.path.join(scratch, "lat.wasm")
        if not os.path.exists(self.lat):
            self._run(["build", os.path.join(HERE, "stages", "lat.c"), "-o",
                       self.lat])
        self.issue(["cloud:cloud", "edge:edge"] +
                   ["dev-%d:device" % i for i in range(n)])

    def _run(self, args):
        r = subprocess.run(self.iso + args, capture_output=True, text=True)
        if r.returncode != 0:
            raise NodeBenchError("isoflow %s: %s" % (" ".join(args),
                                                     r.stderr.strip()))

    def issue(self, names):
        """Issues the certificates not issued yet (name:role)."""
        have = set(os.listdir(self.certs))
        for nr in names:
            name, role = nr.split(":")
            if name + ".crt" not in have:
                self._run(["ca", "issue", os.path.join(self.dir, "ca"), name,
                           "--role", role, "--out", self.certs])

    def start(self, flow, name, duration, extra=()):
        """Starts node name (output to log-NAME); returns its Popen."""
        log = open(os.path.join(self.dir, "log-" + name), "w")
        p = subprocess.Popen(
            self.iso + ["node", "--flow", flow, "--name", name, "--certs",
                        self.certs, "--state", os.path.join(self.dir, "st"),
                        "--quiet", "--workers", "1", "--duration",
                        "%g" % duration] + list(extra),
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs[name] = p
        return p

    def reap(self, timeout):
        """Waits for every process (killing those still running after
        timeout s) with wait4; returns name -> (exit status, CPU seconds
        user+system, peak RSS KiB)."""
        out, deadline = {}, time.time() + timeout
        for name, p in self.procs.items():
            while True:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid or time.time() >= deadline:
                    break
                time.sleep(0.05)
            if not pid:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
            p.returncode = os.waitstatus_to_exitcode(status)
            out[name] = (p.returncode, ru.ru_utime + ru.ru_stime,
                         ru.ru_maxrss)
        self.procs = {}
        return out

    def log(self, name):
        with open(os.path.join(self.dir, "log-" + name)) as f:
            return f.read()


def throughput_run(cl, mode, devices, rate, seconds, log):
    """One device -> edge -> cloud run: mode 'demand' (flat out) or 'push'
    at rate msg/s in total.  Returns a dict: msgs (msg/s reaching the cloud
    sink over the measured window), p50_us, p99_us, max_us, offered, and
    cpu_<node> (% of one core over the node's life) per node."""
    skip, window = 2, max(1, int(seconds) - 3)
    pc = 20000 + (os.getpid() * 7 + int(time.time() * 1000)) % 20000
    if mode == "demand":
        src = "demand(src credits 1024)"
    else:
        src = "push(src every 1ms)"
    flow = os.path.join(cl.dir, "n.flow")
    with open(flow, "w") as f:
        f.write(flow_text(devices, pc, pc + 1, cl.stages, cl.lat, src, skip,
                          window))
    shutil.rmtree(os.path.join(cl.dir, "st"), ignore_errors=True)
    extra = ([] if mode == "demand" else
             ["--time-scale", "%.6g" % (rate / (devices * 1000.0))])
    t0 = time.time()
    cl.start(flow, "cloud", seconds + 3)
    cl.start(flow, "edge", seconds + 2)
    time.sleep(0.3)
    for i in range(devices):
        cl.start(flow, "dev-%d" % i, seconds, extra)
    res = cl.reap(seconds + 15)
    wall = time.time() - t0
    # Flat-out demand devices spool far ahead of the links (no CREDIT
    # frames across links yet), so they time out their drain (exit 1).
    bad = {n: r[0] for n, r in res.items() if r[0] != 0 and
           not (mode == "demand" and n.startswith("dev-"))}
    if bad:
        raise NodeBenchError("node exit status %r: %s" % (
            bad, cl.log(sorted(bad)[0])[-300:]))
    lat = parse_lat(cl.log("cloud"))
    if not lat:
        raise NodeBenchError("no latency line from the cloud (%s)"
                             % cl.log("cloud")[-300:])
    fig = {"msgs": lat[0] / float(window), "p50_us": lat[1],
           "p99_us": lat[2], "max_us": lat[3],
           "offered": rate if mode == "push" else 0}
    life = {"cloud": seconds + 3, "edge": seconds + 2}
    for name, (_, cpu, rss) in res.items():
        key = name if name in life else "device"
        pct = 100.0 * cpu / min(life.get(name, seconds), wall)
        fig["cpu_" + key] = max(fig.get("cpu_" + key, 0), pct)
    log("  nodes %-6s %3d dev %9s offered: %9.0f msg/s at the cloud, "
        "p50 %6d us p99 %7d us, cpu cloud %.0f%% edge %.0f%% device %.0f%%"
        % (mode, devices, "%.0f" % rate if mode == "push" else "-",
           fig["msgs"], fig["p50_us"], fig["p99_us"], fig["cpu_cloud"],
           fig["cpu_edge"], fig["cpu_device"]))
    return fig


def connections_run(cl, devices, seconds, log):
    """N device processes at 1 msg/s each (push every 1ms at time scale
    0.001) into one edge; returns connected (links the edge reports up, from
    its status), edge_cpu_pct over the steady window, edge_rss_kb, msgs
    (msg/s at the cloud) and start_s (time to start every device)."""
    pc = 20000 + (os.getpid() * 13 + int(time.time() * 1000)) % 20000
    flow = os.path.join(cl.dir, "c.flow")
    with open(flow, "w") as f:
        f.write(flow_text(devices, pc, pc + 1, cl.stages, cl.lat,
                          "push(src every 1ms)", 0, 3600))
    shutil.rmtree(os.path.join(cl.dir, "st"), ignore_errors=True)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, devices * 2 + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    long = 3600
    cl.start(flow, "cloud", long)
    edge = cl.start(flow, "edge", long)
    time.sleep(0.3)
    t0 = time.time()
    fig = {"devices": devices}
    try:
        for i in range(devices):
            cl.start(flow, "dev-%d" % i, long,
                     ["--time-scale", "0.001"])
        fig["start_s"] = time.time() - t0
        time.sleep(2)
        c0, _ = proc_cpu_rss(edge.pid)
        t1 = time.time()
        time.sleep(seconds)
        c1, rss = proc_cpu_rss(edge.pid)
        fig["edge_cpu_pct"] = 100.0 * (c1 - c0) / (time.time() - t1)
        fig["edge_rss_kb"] = rss
        fig["connected"] = established(pc + 1)
        fig["alive"] = sum(1 for n, p in cl.procs.items()
                           if n.startswith("dev-") and p.poll() is None)
    finally:
        for p in cl.procs.values():
            if p.poll() is None:
                p.terminate()
        res = cl.reap(30)
    fig["edge_cpu_total_s"] = res["edge"][1]
    log("  nodes connections %5d: %d connected, %d alive, edge cpu %.1f%% of a core, "
        "rss %.1f MB, started in %.1f s"
        % (devices, fig["connected"], fig["alive"], fig["edge_cpu_pct"],
           fig["edge_rss_kb"] / 1024.0, fig["start_s"]))
    return fig


# Push rates tried (total msg/s offered by DEVICES devices), the devices,
# the connection counts tried.
PUSH_RATES = (5000, 10000, 20000, 40000)
DEVICES = 4
CONNECTIONS = (1000, 10000, 50000)


def nodes_main(isoflow, stages, seconds, smoke, log):
    """Runs the node benchmarks; returns (flat figures nodes.*, failures,
    notes).  smoke: one short push run and 20 connections only."""
    data, failures, notes = {}, [], []
    scr = tempfile.mkdtemp(prefix="isoflow-bench-nodes-")
    try:
        n_conn = (20,) if smoke else CONNECTIONS
        cl = Cluster(isoflow, stages, scr, DEVICES)
        runs = [("push", 2000)] if smoke else \
            [("demand", 0)] + [("push", r) for r in PUSH_RATES]
        best = 0.0
        for mode, rate in runs:
            try:
                fig = throughput_run(cl, mode, DEVICES, rate, seconds, log)
            except NodeBenchError as e:
                failures.append("nodes %s %g: %s" % (mode, rate, e))
                continue
            key = "demand" if mode == "demand" else "push_%d" % rate
            for k, v in fig.items():
                data["nodes.%s.%s" % (key, k)] = round(v, 1)
            best = max(best, fig["msgs"])
        data["nodes.max_msgs"] = round(best, 1)
        if best > 0 and not smoke:
            half = best / 2.0
            try:
                fig = throughput_run(cl, "push", DEVICES, half, seconds, log)
                for k, v in fig.items():
                    data["nodes.half.%s" % k] = round(v, 1)
            except NodeBenchError as e:
                failures.append("nodes half rate: %s" % e)
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        for n in n_conn:
            # One process per device: each needs ~10 MB and a few fds; the
            # edge needs one fd per device.
            if n + 256 > hard:
                notes.append("%d connections not tried: RLIMIT_NOFILE hard "
                             "limit %d" % (n, hard))
                break
            if n > 2000:
                notes.append("%d connections not tried: one `isoflow node` "
                             "process per device (~10 MB each) and no "
                             "many-connection load generator" % n)
                break
            try:
                shutil.rmtree(scr)
                os.mkdir(scr)
                cl = Cluster(isoflow, stages, scr, n)
                fig = connections_run(cl, n, 5 if smoke else 10, log)
            except (NodeBenchError, OSError) as e:
                failures.append("nodes %d connections: %s" % (n, e))
                break
            for k, v in fig.items():
                data["nodes.conn_%d.%s" % (n, k)] = round(v, 1)
    finally:
        shutil.rmtree(scr, ignore_errors=True)
    return data, failures, notes
