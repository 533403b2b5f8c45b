"""nodes.py - the node benchmarks of `make bench` (stdlib only; run.py's
"nodes" section calls it, BENCH_ONLY=nodes runs only it).

1. Throughput device -> edge -> cloud over mutual TLS on loopback: a cloud,
   an edge and K device `isoflow node` processes with certificates from
   `isoflow ca`; the device source is bench_src, the edge runs bench_pass,
   the cloud sink is bench/nodes/stages/lat.c (built here with `isoflow
   build`), which measures now - production time of every message over a
   fixed window and logs the count and p50/p99.  Demand mode flat out, push
   at increasing rates, then push at half the best rate (capped at half of
   the 300,000 msg/s target) for the p99 target.
   CPU per node from wait4 (user+system over the run).
2. Device connections one edge holds at 1 msg/s each over TLS: up to
   CONN_PROCESSES_MAX one `isoflow node` process per device, beyond that
   tests/node/nd_loadgen processes (certificates issued in memory); links
   held (/proc/net/tcp and the edge's own count), edge CPU (% of one core
   from /proc/PID/stat over a steady window), RSS, time to connect all.
"""

import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import ports  # noqa: E402  (bench/ports.py)

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
    # The sink's warm-up skip and measured window (s); short (smoke) runs
    # measure from the first message.
    if seconds >= 5:
        skip, window = 2, max(1, int(seconds) - 3)
    else:
        skip, window = 0, max(1, int(seconds) - 1)
    pc = ports.free_port_pair(os.getpid() * 7 + int(time.time() * 1000))
    if mode == "demand":
        # 1024 credits a device: ~100 KB in flight per device link; the
        # demand latency is about 4 x 1024 / throughput (Little's law):
        # 256 gives ~3 ms at ~300 000 msg/s, 2048 no more throughput.
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
    # Flat-out demand devices may still have records in flight when they
    # stop (their drain can time out: exit 1); the cloud's count is what
    # is measured.
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


def start_edge_counting(cl, flow, duration):
    """Starts the edge like Cluster.start but without --quiet, so that it
    prints a status line a second ("links up N": its own count)."""
    log = open(os.path.join(cl.dir, "log-edge"), "w")
    p = subprocess.Popen(
        cl.iso + ["node", "--flow", flow, "--name", "edge", "--certs",
                  cl.certs, "--state", os.path.join(cl.dir, "st"),
                  "--workers", "1", "--duration", "%g" % duration],
        stdout=log, stderr=subprocess.STDOUT)
    log.close()
    cl.procs["edge"] = p
    return p


def edge_links_up(cl):
    """The edge's latest "links up N" (device links + the cloud link), or
    -1."""
    found = re.findall(r"links up (\d+)", cl.log("edge"))
    return int(found[-1]) if found else -1


def raise_nofile():
    """Soft RLIMIT_NOFILE to the hard limit (the hard one up to
    /proc/sys/fs/nr_open when permitted) for this process and the children
    it starts; returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        with open("/proc/sys/fs/nr_open") as f:
            nr = int(f.read())
        if hard != resource.RLIM_INFINITY and nr > hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nr, nr))
            soft = hard = nr
    except (OSError, ValueError):
        pass  # no CAP_SYS_RESOURCE: keep the hard limit
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def connections_run(cl, devices, seconds, log, loadgen=None):
    """N devices at 1 msg/s each into one edge (bench_pass) and on to the
    cloud, over mutual TLS.  loadgen None: one `isoflow node` process per
    device (push every 1ms at time scale 0.001); else nd_loadgen processes
    (at most CONN_PER_GEN links each, generator k bound to 127.0.0.(k+2),
    device certificates issued in memory from the CA).  Returns connected
    (established TCP links on the edge's port, /proc/net/tcp), edge_links
    (the edge's own count of device links), edge_cpu_pct (% of one core
    over a steady window of `seconds`), edge_rss_kb, edge_connect_cpu_s
    (edge CPU until every link was up or progress stopped), connect_s (time
    until then) and handshakes_per_s."""
    pc = ports.free_port_pair(os.getpid() * 13 + int(time.time() * 1000))
    flow = os.path.join(cl.dir, "c.flow")
    with open(flow, "w") as f:
        f.write(flow_text(devices, pc, pc + 1, cl.stages, cl.lat,
                          "push(src every 1ms)", 0, 3600))
    shutil.rmtree(os.path.join(cl.dir, "st"), ignore_errors=True)
    raise_nofile()
    long = 3600
    cl.start(flow, "cloud", long)
    edge = start_edge_counting(cl, flow, long)
    time.sleep(0.5)
    fig = {"devices": devices}
    gens = []
    try:
        e0, _ = proc_cpu_rss(edge.pid)
        t0 = time.time()
        if loadgen is None:
            for i in range(devices):
                cl.start(flow, "dev-%d" % i, long,
                         ["--time-scale", "0.001"])
        else:
            ng = (devices + CONN_PER_GEN - 1) // CONN_PER_GEN
            per = (devices + ng - 1) // ng
            for k in range(ng):
                first, cnt = k * per, min(per, devices - k * per)
                out = open(os.path.join(cl.dir, "log-gen%d" % k), "w")
                gens.append(subprocess.Popen(
                    [loadgen, "--ca", os.path.join(cl.dir, "ca"), "--from",
                     "127.0.0.%d" % (k + 2), flow, "127.0.0.1:%d" % (pc + 1),
                     str(first), str(cnt), "dev-%d", "1", "1", str(long)],
                    stdout=out, stderr=subprocess.STDOUT))
                out.close()
        # Until every link is up, or no progress for CONN_STALL_S.
        last, last_t = -1, time.time()
        while True:
            c = established(pc + 1)
            if c >= devices:
                break
            if c > last:
                last, last_t = c, time.time()
            elif time.time() - last_t > CONN_STALL_S:
                break
            time.sleep(0.5)
        fig["connect_s"] = time.time() - t0
        e1, _ = proc_cpu_rss(edge.pid)
        fig["edge_connect_cpu_s"] = e1 - e0
        held = established(pc + 1)
        fig["handshakes_per_s"] = held / fig["connect_s"]
        time.sleep(2)
        c0, _ = proc_cpu_rss(edge.pid)
        t1 = time.time()
        time.sleep(seconds)
        c1, rss = proc_cpu_rss(edge.pid)
        fig["edge_cpu_pct"] = 100.0 * (c1 - c0) / (time.time() - t1)
        fig["edge_rss_kb"] = rss
        fig["connected"] = established(pc + 1)
        time.sleep(1.2)
        fig["edge_links"] = edge_links_up(cl) - 1  # minus the cloud link
    finally:
        for p in gens:
            p.terminate()
        for p in gens:
            p.wait()
        for p in cl.procs.values():
            if p.poll() is None:
                p.terminate()
        res = cl.reap(60)
    fig["edge_cpu_total_s"] = res["edge"][1]
    log("  nodes connections %5d (%s): %d connected (edge counts %d), edge "
        "cpu %.1f%% of a core, rss %.1f MB (%.1f KB/link), all up after "
        "%.1f s (%.0f handshakes/s, edge %.2f ms CPU each)"
        % (devices, "processes" if loadgen is None else
           "nd_loadgen x%d" % len(gens), fig["connected"], fig["edge_links"],
           fig["edge_cpu_pct"], fig["edge_rss_kb"] / 1024.0,
           fig["edge_rss_kb"] / max(1, fig["connected"]), fig["connect_s"],
           fig["handshakes_per_s"],
           1000.0 * fig["edge_connect_cpu_s"] / max(1, held)))
    return fig


# Push rates tried (total msg/s offered by DEVICES devices), the devices,
# the connection counts tried.
PUSH_RATES = (20000, 50000, 100000, 150000)
NODES_TARGET = 300000.0  # msg/s at the cloud (issue 5)
DEVICES = 4
CONNECTIONS = (1000, 10000, 50000)
# Up to this many devices run as `isoflow node` processes (~10 MB each);
# more come from nd_loadgen, at most CONN_PER_GEN links per generator
# process (each needs a descriptor per link).
CONN_PROCESSES_MAX = 1000
CONN_PER_GEN = 16000
CONN_STALL_S = 20  # connecting stops counting after this long without progress


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
            # The latency target is at half the throughput target: half of
            # what the nodes sustain, capped at half of 300,000 (the flow
            # benchmarks cap the same way).
            half = min(best, NODES_TARGET) / 2.0
            try:
                fig = throughput_run(cl, "push", DEVICES, half, seconds, log)
                for k, v in fig.items():
                    data["nodes.half.%s" % k] = round(v, 1)
            except NodeBenchError as e:
                failures.append("nodes half rate: %s" % e)
        hard = raise_nofile()
        loadgen = os.path.join(os.path.dirname(os.path.abspath(stages)),
                               "tests", "node", "nd_loadgen")
        for n in n_conn:
            use_gen = n > CONN_PROCESSES_MAX
            if use_gen and not os.path.exists(loadgen):
                notes.append("%d connections not tried: no %s (make build)"
                             % (n, loadgen))
                break
            if n + 256 > hard:
                notes.append("%d connections: the edge can hold at most ~%d "
                             "(RLIMIT_NOFILE hard limit %d, not raisable "
                             "here)" % (n, hard - 256, hard))
            try:
                shutil.rmtree(scr)
                os.mkdir(scr)
                cl = Cluster(isoflow, stages, scr, 0 if use_gen else n)
                fig = connections_run(cl, n, 5 if smoke else 10, log,
                                      loadgen if use_gen else None)
            except (NodeBenchError, OSError) as e:
                failures.append("nodes %d connections: %s" % (n, e))
                break
            for k, v in fig.items():
                data["nodes.conn_%d.%s" % (n, k)] = round(v, 2)
    finally:
        shutil.rmtree(scr, ignore_errors=True)
    return data, failures, notes
