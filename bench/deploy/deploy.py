"""deploy.py - the live-update benchmark of `make bench` (stdlib only;
run.py's "deploy" section calls it, BENCH_ONLY=deploy runs only it).

Compares, on loopback with mutual TLS (a cloud, an edge and one device
`isoflow node` process; the stage `xform` runs on the device by default,
--place edge puts it on the edge), two ways of getting a new version of one
stage running:

(a) firmware-style: the stage is compiled into the node binary (isoflow-fw,
    bench/deploy/CMakeLists.txt).  Timed from the start: rewrite the
    stage's version constant in the firmware's source, incremental `cmake
    --build --target isoflow-fw` (stage .wasm rebuilt, embedded, binary
    relinked), atomic copy of the binary into the node's install path,
    SIGTERM the running node and wait for its exit, start the new binary,
    until the first message tagged with the new version reaches the sink.
    The firmware build directory is configured and built from scratch once
    per run (reported as a note).
(b) `isoflow deploy --node NAME --stage xform vN.wasm --wait first`, from
    the command's start until it returns after the node's "first" event;
    also the node-reported ms (request received -> first message on the new
    version).  Each deploy sends a new module (v2, v3, ...: every version
    is distinct content), built and signed beforehand (its build time is
    reported as a note, not counted).  Two ways, alternating:
    cold  --no-agent: the command starts OpenSSL, makes its TLS context
          and resumes a TLS session with the entry node itself;
    agent through `isoflow agent --flow` (started with the cluster, its
          links to the edge and the cloud up before the command: an
          operator's kept connections, like ssh's ControlMaster).

The sink is a `jsonl` stage on the cloud; the stage tags its output with
its version ("v":"vN").  (a) and (b) alternate, each on its own cluster
(only one cluster runs at a time), reps times each; medians.
"""

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
import ports  # noqa: E402  (bench/ports.py)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
STAGE = "xform"
VERSION_RE = re.compile(r"^#define XFORM_VERSION [0-9]+$", re.M)
FIRST_RE = re.compile(r"first message on v(\d+) after ([0-9.]+) ms")

FLOW = """devices dev "dev-%d" x 1 connect edge
node cloud @cloud listen "127.0.0.1:{pc}"
node edge  @edge  listen "127.0.0.1:{pe}" connect cloud
stage src   @dev   wasm "{src}"
stage xform @{place} wasm "{xform}"
stage pass  @{pass_place} wasm "{pass_}"
stage out   @cloud jsonl "out.jsonl"
flow f: push(src every 1ms) ~> [xform, pass, out]
"""
NODES = ("cloud", "edge", "dev-0")


class DeployBenchError(Exception):
    """A step of the benchmark failed."""


def set_version(text, n):
    """The stage source text with its XFORM_VERSION constant set to n."""
    if len(VERSION_RE.findall(text)) != 1:
        raise DeployBenchError("the stage source has no single "
                               "'#define XFORM_VERSION N' line")
    return VERSION_RE.sub("#define XFORM_VERSION %d" % n, text)


def parse_first(out):
    """(version, node-reported ms, at_ns or None) from `isoflow deploy
    --wait first [--json]` output, or None.  at_ns: the node's
    CLOCK_MONOTONIC at the first message on the new version (--json)."""
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict) and ev.get("event") == "first":
            at = ev.get("at_ns")
            return (int(ev.get("version", -1)), float(ev.get("ms", 0)),
                    int(at) if isinstance(at, (int, float)) and at > 0
                    else None)
    m = FIRST_RE.search(out)
    return (int(m.group(1)), float(m.group(2)), None) if m else None


def tags_in(lines):
    """The version tags ("v2") of sink lines (jsonl records whose msg has
    "v"), in order; lines that are not such records are skipped."""
    tags = []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        msg = rec.get("msg") if isinstance(rec, dict) else None
        if isinstance(msg, dict) and isinstance(msg.get("v"), str):
            tags.append(msg["v"])
    return tags


class Sink:
    """Follows a jsonl file from an offset: new complete lines only."""

    def __init__(self, path):
        self.path, self.off, self.part = path, 0, b""

    def skip_to_end(self):
        self.off = os.path.getsize(self.path) if os.path.exists(self.path) \
            else 0
        self.part = b""

    def new_lines(self):
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as f:
            f.seek(self.off)
            data = f.read()
        self.off += len(data)
        data = self.part + data
        lines = data.split(b"\n")
        self.part = lines.pop()
        return [l.decode("utf-8", "replace") for l in lines]

    def wait_tag(self, tag, timeout, poll=0.002):
        """Waits until a line tagged `tag` arrives; returns the time it was
        seen (time.perf_counter()), raises DeployBenchError after timeout
        seconds."""
        deadline = time.perf_counter() + timeout
        seen = []
        while True:
            now = time.perf_counter()
            got = tags_in(self.new_lines())
            if tag in got:
                return now
            seen += got[-3:]
            if now > deadline:
                raise DeployBenchError("no message tagged %s reached the sink "
                                       "within %g s (last tags seen: %s)"
                                       % (tag, timeout, seen[-3:] or "none"))
            time.sleep(poll)


class Cluster:
    """cloud + edge + dev-0 `isoflow node` processes of one flow; each node
    runs the binary at bin[NAME] (its install path)."""

    def __init__(self, base, flow, certs, binaries, extra=()):
        self.base, self.flow, self.certs = base, flow, certs
        self.bin, self.extra = binaries, list(extra)
        self.procs = {}
        self.sink = Sink(os.path.join(os.path.dirname(flow), "out.jsonl"))

    def start_node(self, name):
        log = open(os.path.join(self.base, "log-" + name), "a")
        p = subprocess.Popen(
            [self.bin[name], "node", "--flow", self.flow, "--name", name,
             "--certs", self.certs, "--state",
             os.path.join(self.base, "state"), "--quiet", "--workers", "1"]
            + self.extra, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        log.close()
        self.procs[name] = p
        return p

    def stop_node(self, name, timeout=20.0):
        """SIGTERM and wait (kill after timeout); returns the exit status."""
        p = self.procs.pop(name)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise DeployBenchError("node %s did not stop within %g s after "
                                   "SIGTERM" % (name, timeout))

    def start(self, tag, timeout, settle=1.0):
        """Starts every node, waits until messages tagged `tag` reach the
        sink, then `settle` seconds more (links and workers in their steady
        state before anything is timed)."""
        self.sink.skip_to_end()
        for n in NODES:
            self.start_node(n)
            time.sleep(0.1)
        try:
            self.sink.wait_tag(tag, timeout)
        except DeployBenchError as e:
            raise DeployBenchError("%s; %s" % (e, self.log_tail()))
        time.sleep(settle)

    def stop(self):
        for n in reversed(NODES):
            if n in self.procs:
                try:
                    self.stop_node(n)
                except DeployBenchError:
                    pass

    def log_tail(self):
        out = []
        for n in NODES:
            p = os.path.join(self.base, "log-" + n)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    t = f.read().strip().splitlines()[-3:]
                out.append("%s: %s" % (n, " | ".join(t) or "(empty log)"))
        return "; ".join(out)


def run(cmd, what, **kw):
    """Runs cmd; returns (seconds, stdout); raises DeployBenchError with the
    output's tail on failure."""
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise DeployBenchError("%s failed (exit %d): %s" % (
            what, r.returncode,
            (r.stderr.strip() or r.stdout.strip())[-600:]))
    return dt, r.stdout


def free_port_pair(seed):
    """Two consecutive free loopback ports (bench/ports.py)."""
    try:
        return ports.free_port_pair(seed)
    except OSError as e:
        raise DeployBenchError(str(e))


class Bench:
    """The scratch directory, the tools and both clusters."""

    def __init__(self, iso, build, scratch, stage_src, place, log,
                 quick_fw=False):
        self.iso, self.build, self.dir, self.log = iso, build, scratch, log
        self.place, self.quick_fw = place, quick_fw
        with open(stage_src) as f:
            self.src_text = f.read()
        set_version(self.src_text, 1)  # checks the constant is there
        self.src_name = os.path.basename(stage_src)
        self.certs = os.path.join(scratch, "certs")
        self.keys = os.path.join(scratch, "keys")

    def tool(self, args, what):
        return run(self.iso + args, what)

    def setup_pki(self):
        ca = os.path.join(self.dir, "ca")
        self.tool(["ca", "init", ca], "isoflow ca init")
        os.makedirs(self.certs)
        shutil.copyfile(os.path.join(ca, "ca.crt"),
                        os.path.join(self.certs, "ca.crt"))
        for name, role in (("cloud", "cloud"), ("edge", "edge"),
                           ("dev-0", "device"), ("operator", "operator")):
            self.tool(["ca", "issue", ca, name, "--role", role, "--out",
                       self.certs], "isoflow ca issue " + name)
        os.makedirs(self.keys)
        self.tool(["key", "gen", "bench", "--dir", self.keys],
                  "isoflow key gen")

    def module(self, n):
        """Builds and signs version n of the stage (scratch/mods/vN.wasm);
        returns (path, build seconds)."""
        d = os.path.join(self.dir, "mods")
        os.makedirs(d, exist_ok=True)
        src = os.path.join(d, "v%d_%s" % (n, self.src_name))
        with open(src, "w") as f:
            f.write(set_version(self.src_text, n))
        out = os.path.join(d, "%s_v%d.wasm" % (STAGE, n))
        dt, _ = self.tool(["build", src, "-o", out], "isoflow build v%d" % n)
        self.tool(["sign", os.path.join(self.keys, "bench.key"), out,
                   "--stage", STAGE], "isoflow sign v%d" % n)
        return out, dt

    def write_flow(self, sub, xform_ref):
        d = os.path.join(self.dir, sub)
        os.makedirs(d, exist_ok=True)
        pc = free_port_pair(os.getpid() + len(sub) * 101 +
                            int(time.time()) % 1000)
        path = os.path.join(d, "bench.flow")
        with open(path, "w") as f:
            f.write(FLOW.format(pc=pc, pe=pc + 1, place=self.place,
                                src=os.path.join(self.build, "stages",
                                                 "bench_src.wasm"),
                                xform=xform_ref,
                                pass_place=("edge" if self.place == "dev"
                                            else "cloud"),
                                pass_=os.path.join(self.build, "stages",
                                                   "bench_pass.wasm")))
        return path

    # ---- (a) the firmware-style update ----------------------------------

    def setup_fw(self):
        """Configures and builds isoflow-fw from scratch with v1 compiled
        in; installs a copy per node.  Returns (configure+build seconds,
        binary bytes)."""
        self.fw_src = os.path.join(self.dir, "fwsrc", self.src_name)
        os.makedirs(os.path.dirname(self.fw_src))
        with open(self.fw_src, "w") as f:
            f.write(set_version(self.src_text, 1))
        self.fw_build = os.path.join(self.dir, "fwbuild")
        t0 = time.perf_counter()
        # --smoke: -O0, only to keep the test short (timings not judged).
        btype = (["-DCMAKE_BUILD_TYPE=Debug", "-DCMAKE_C_FLAGS_DEBUG=-O0"]
                 if self.quick_fw else ["-DCMAKE_BUILD_TYPE=Release"])
        run(["cmake", "-S", ROOT, "-B", self.fw_build] + btype + [
             "-DISOFLOW_FW_STAGE=" + self.fw_src,
             "-DISOFLOW_FW_STAGE_NAME=" + STAGE], "configuring isoflow-fw")
        self.fw_make()
        full = time.perf_counter() - t0
        self.fw_bin = os.path.join(self.fw_build, "isoflow-fw")
        bins = {}
        for n in NODES:
            d = os.path.join(self.dir, "fw", "install", n)
            os.makedirs(d)
            bins[n] = os.path.join(d, "isoflow-fw")
            shutil.copy2(self.fw_bin, bins[n])
        flow = self.write_flow("fw", "embedded:" + STAGE)
        self.fw = Cluster(os.path.join(self.dir, "fw"), flow, self.certs,
                          bins)
        return full, os.path.getsize(self.fw_bin)

    def fw_make(self):
        return run(["cmake", "--build", self.fw_build, "--target",
                    "isoflow-fw", "-j", str(os.cpu_count() or 2)],
                   "building isoflow-fw")[0]

    def fw_update(self, n, target):
        """One firmware-style update of `target` to version n on the running
        cluster; returns the times of its steps (seconds) and the total."""
        t0 = time.perf_counter()
        with open(self.fw_src, "w") as f:   # the developer's edit
            f.write(set_version(self.src_text, n))
        build = self.fw_make()
        t1 = time.perf_counter()
        dst = self.fw.bin[target]
        tmp = dst + ".new"
        shutil.copy2(self.fw_bin, tmp)      # copy, then atomic replace
        os.replace(tmp, dst)
        t2 = time.perf_counter()
        self.fw.sink.skip_to_end()
        status = self.fw.stop_node(target)
        t3 = time.perf_counter()
        self.fw.start_node(target)
        seen = self.fw.sink.wait_tag("v%d" % n, 60)
        if status != 0:
            self.log("  note: %s exited with status %d on SIGTERM"
                     % (target, status))
        return {"build_s": build, "install_s": t2 - t1, "stop_s": t3 - t2,
                "restart_s": seen - t3, "total_s": seen - t0}

    def check_embedded(self):
        """The firmware flow checks with isoflow-fw and is refused by the
        plain command with the message naming the missing module.  Returns
        problems."""
        probs = []
        run([self.fw_bin, "check", self.fw.flow], "isoflow-fw check")
        r = subprocess.run(self.iso + ["check", self.fw.flow],
                           capture_output=True, text=True)
        want = ('no module "embedded:%s" is compiled into this binary'
                % STAGE)
        if r.returncode == 0 or want not in r.stderr:
            probs.append("isoflow check of an embedded: stage: exit %d, "
                         "expected an error with %r, got %r"
                         % (r.returncode, want, r.stderr.strip()[-300:]))
        return probs

    # ---- (b) isoflow deploy ----------------------------------------------

    def setup_deploy(self):
        v1, _ = self.module(1)
        flow = self.write_flow("dp", v1)
        bins = {n: self.iso[0] for n in NODES}
        self.dp = Cluster(os.path.join(self.dir, "dp"), flow, self.certs,
                          bins, ["--trust", os.path.join(self.keys,
                                                         "bench.pub")])
        return v1

    def start_agent(self, timeout=15.0):
        """`isoflow agent --flow` for the deploy cluster; returns once its
        socket answers and its links to the edge and the cloud are up."""
        sock = os.path.join(self.certs, "operator.agent")
        log = os.path.join(self.dp.base, "log-agent")
        off = os.path.getsize(log) if os.path.exists(log) else 0
        with open(log, "a") as f:
            p = subprocess.Popen(self.iso + ["agent", "--certs", self.certs,
                                             "--flow", self.dp.flow],
                                 stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        deadline = time.perf_counter() + timeout
        text = ""
        while time.perf_counter() < deadline:
            with open(log, errors="replace") as f:
                f.seek(off)
                text = f.read()
            if (os.path.exists(sock) and "connected to edge" in text and
                    "connected to cloud" in text):
                return p
            if p.poll() is not None:
                break
            time.sleep(0.02)
        self.stop_agent(p)
        raise DeployBenchError("isoflow agent not ready after %g s: %s"
                               % (timeout, text.strip()[-400:]))

    def stop_agent(self, p):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def deploy(self, module, n, target, via="cold"):
        """`isoflow deploy ... --wait first --json` of module (version n),
        cold (--no-agent) or through the running agent (via "agent");
        returns (seconds from the command's start to the first message
        processed by the new version, command seconds until it returned,
        node-reported ms, whether the operator's TLS session was resumed:
        the entry node, the edge, logs it).  The first is what the issue
        times; it comes from the node's "first" event (at_ns, its
        CLOCK_MONOTONIC, which time.monotonic_ns reads too on this one
        host)."""
        self.dp.sink.skip_to_end()
        elog = os.path.join(self.dp.base, "log-edge")
        off = os.path.getsize(elog) if os.path.exists(elog) else 0
        cmd = self.iso + ["deploy", "--flow", self.dp.flow, "--node", target,
                          "--stage", STAGE, "--certs", self.certs, "--as",
                          "operator", "--wait", "first", "--json", module]
        cmd += (["--agent", os.path.join(self.certs, "operator.agent")]
                if via == "agent" else ["--no-agent"])
        t0_ns = time.monotonic_ns()
        r = subprocess.run(cmd, capture_output=True, text=True)
        dt = (time.monotonic_ns() - t0_ns) / 1e9
        if r.returncode != 0:
            raise DeployBenchError("isoflow deploy v%d failed (exit %d): %s"
                                   % (n, r.returncode,
                                      (r.stdout + r.stderr).strip()[-600:]))
        first = parse_first(r.stdout + r.stderr)
        if not first or first[0] <= 0 or first[2] is None:
            raise DeployBenchError("isoflow deploy v%d: no 'first' event "
                                   "with at_ns in its output: %s"
                                   % (n, (r.stdout + r.stderr)[-300:]))
        try:
            got = json.loads(r.stdout.strip().splitlines()[-1]).get("via")
        except (ValueError, IndexError, AttributeError):
            got = None
        if got != ("agent" if via == "agent" else "direct"):
            raise DeployBenchError("isoflow deploy v%d: summary says via %r, "
                                   "expected %s" % (n, got, via))
        to_first = (first[2] - t0_ns) / 1e9
        if not 0 < to_first <= dt:
            raise DeployBenchError("isoflow deploy v%d: first message at "
                                   "%.1f ms, outside the command's %.1f ms "
                                   "(not one host clock?)"
                                   % (n, to_first * 1e3, dt * 1e3))
        # The sink must see the new version too (and nothing lost on the
        # way is checked by the node tests, not here).
        self.dp.sink.wait_tag("v%d" % n, 30)
        with open(elog, "rb") as f:
            f.seek(off)
            resumed = b"connected (TLS session resumed)" in f.read()
        return to_first, dt, first[1], resumed


def med(xs):
    return statistics.median(xs) if xs else 0.0


def deploy_main(iso, build, reps, smoke, log, parts=("a", "b"),
                place="dev"):
    """Runs the benchmark; returns (flat figures deploy.*, failures,
    notes).  smoke: the small stage (tiny.c), one repetition.  Part "b"
    runs both ways (cold, agent) each repetition."""
    data, failures, notes = {}, [], []
    stage_src = os.path.join(HERE, "stages", "tiny.c" if smoke else "xform.c")
    target = "dev-0" if place == "dev" else "edge"
    settle = 0.2 if smoke else 1.0
    scr = tempfile.mkdtemp(prefix="isoflow-bench-deploy-")
    b = None
    try:
        b = Bench(iso, build, scr, stage_src, place, log, quick_fw=smoke)
        b.setup_pki()
        fw_runs, dp_runs, mod_build = [], [], []
        ag_runs = []
        if "a" in parts:
            full, binary = b.setup_fw()
            data["deploy.fw_full_build_s"] = round(full, 2)
            data["deploy.binary_bytes"] = binary
            log("  firmware build from scratch (configure + build "
                "isoflow-fw): %.1f s, %d bytes" % (full, binary))
            if smoke:
                failures += b.check_embedded()
        if "b" in parts:
            v1 = b.setup_deploy()
            data["deploy.module_bytes"] = os.path.getsize(v1)
        vfw, vdp = 1, 1
        for rep in range(reps):
            order = (("a", "b", "agent") if rep % 2 == 0
                     else ("agent", "b", "a"))
            for part in order:
                if part not in parts and not (part == "agent" and
                                              "b" in parts):
                    continue
                if part == "a":
                    b.fw.start("v%d" % vfw, 60, settle)
                    try:
                        r = b.fw_update(vfw + 1, target)
                    finally:
                        b.fw.stop()
                    vfw += 1
                    fw_runs.append(r)
                    log("  (a) firmware v%d: %.2f s (build %.2f s, install "
                        "%.1f ms, stop %.2f s, restart to first message "
                        "%.3f s)" % (vfw, r["total_s"], r["build_s"],
                                     r["install_s"] * 1e3, r["stop_s"],
                                     r["restart_s"]))
                else:
                    via = "agent" if part == "agent" else "cold"
                    mod, bt = b.module(vdp + 1)
                    mod_build.append(bt)
                    b.dp.start("v%d" % vdp, 60, settle)
                    agent = None
                    try:
                        if via == "agent":
                            agent = b.start_agent()
                            time.sleep(settle / 2)
                        dt, cmd_s, node_ms, resumed = b.deploy(
                            mod, vdp + 1, target, via)
                    finally:
                        if agent:
                            b.stop_agent(agent)
                        b.dp.stop()
                    vdp += 1
                    (ag_runs if via == "agent" else dp_runs).append(
                        (dt, node_ms, resumed, cmd_s))
                    log("  (b) isoflow deploy v%d, %s: first message on it "
                        "%.1f ms after the command's start, command "
                        "returned after %.1f ms (node: request to first "
                        "message %.1f ms%s)"
                        % (vdp, "through the agent" if via == "agent"
                           else "cold", dt * 1e3, cmd_s * 1e3, node_ms,
                           "" if via == "agent" else
                           "; TLS session resumed" if resumed
                           else "; full TLS handshake"))
        if fw_runs:
            for k in ("total_s", "build_s", "stop_s", "restart_s"):
                data["deploy.fw_%s" % k] = round(
                    med([r[k] for r in fw_runs]), 3)
            data["deploy.fw_install_ms"] = round(
                med([r["install_s"] for r in fw_runs]) * 1e3, 2)
        # first_ms: the command's start to the first message processed by
        # the new version (the (b)); cmd_ms: until the command
        # returned (the "first" event back from the node).  Cold runs as
        # deploy.*, runs through `isoflow agent` (its links already up) as
        # deploy.agent_*.
        for pre, runs in (("deploy.", dp_runs), ("deploy.agent_", ag_runs)):
            if not runs:
                continue
            data[pre + "first_ms"] = round(med([r[0] for r in runs]) * 1e3,
                                           2)
            data[pre + "first_max_ms"] = round(
                max(r[0] for r in runs) * 1e3, 2)
            data[pre + "cmd_ms"] = round(med([r[3] for r in runs]) * 1e3, 2)
            data[pre + "node_ms"] = round(med([r[1] for r in runs]), 2)
            if fw_runs:
                data[pre + "ratio_pct"] = round(
                    100.0 * data[pre + "first_ms"] / 1e3 /
                    data["deploy.fw_total_s"], 3)
        if dp_runs:
            # The run's first deploy has no cached TLS session (a fresh
            # certs directory): its full handshake is reported apart.
            data["deploy.resumed_runs"] = sum(1 for r in dp_runs if r[2])
            full = [r[0] for r in dp_runs if not r[2]]
            if full:
                data["deploy.first_full_handshake_ms"] = round(
                    med(full) * 1e3, 2)
            data["deploy.module_build_s"] = round(med(mod_build), 3)
        data["deploy.reps"] = reps
        data["deploy.place_device"] = 1 if place == "dev" else 0
    except (DeployBenchError, OSError) as e:
        failures.append("deploy: %s" % e)
    finally:
        for c in ("fw", "dp"):
            cl = getattr(b, c, None) if b else None
            if cl:
                cl.stop()
        if os.environ.get("BENCH_DEPLOY_KEEP"):
            notes.append("scratch kept: " + scr)
        else:
            shutil.rmtree(scr, ignore_errors=True)
    return data, failures, notes


def smoke_problems(data, parts=("a", "b")):
    """What a --smoke run's figures lack: both times produced and
    positive, sizes present.  Returns a list of problems."""
    need = []
    if "a" in parts:
        need += ["deploy.fw_total_s", "deploy.fw_build_s",
                 "deploy.fw_restart_s", "deploy.binary_bytes",
                 "deploy.fw_full_build_s"]
    if "b" in parts:
        need += ["deploy.first_ms", "deploy.cmd_ms", "deploy.node_ms",
                 "deploy.module_bytes", "deploy.agent_first_ms",
                 "deploy.agent_cmd_ms", "deploy.agent_node_ms"]
    if "a" in parts and "b" in parts:
        need += ["deploy.ratio_pct", "deploy.agent_ratio_pct"]
    return ["missing or non-positive " + k for k in need
            if not isinstance(data.get(k), (int, float)) or data[k] <= 0]


def selftest():
    """Checks the helpers; returns a list of failure texts."""
    fails = []
    src = "int a;\n#define XFORM_VERSION 1\nint b;\n"
    if set_version(src, 12) != "int a;\n#define XFORM_VERSION 12\nint b;\n":
        fails.append("set_version")
    try:
        set_version("int a;\n", 2)
        fails.append("set_version accepts a source without the constant")
    except DeployBenchError:
        pass
    if parse_first("dev-0: verified v3\ndev-0: first message on v3 after "
                   "4.5 ms\n") != (3, 4.5, None):
        fails.append("parse_first")
    if parse_first('{"event":"verified","version":3}\n{"event":"first",'
                   '"version":3,"ms":4.5,"at_ns":123456789,"node":"d"}\n'
                   '{"summary": "deployed"}\n') != (3, 4.5, 123456789):
        fails.append("parse_first --json")
    if parse_first("dev-0: healthy\n") is not None:
        fails.append("parse_first without a first line")
    lines = ['{"origin":"dev-0","msg":{"v":"v2","co2":1}}', "garbage",
             '{"msg":"text"}', '{"msg":{"v":"v3"}}']
    if tags_in(lines) != ["v2", "v3"]:
        fails.append("tags_in: %r" % tags_in(lines))
    if smoke_problems({"deploy.first_ms": 2.0, "deploy.cmd_ms": 3.0,
                       "deploy.node_ms": 1.0, "deploy.module_bytes": 9,
                       "deploy.agent_first_ms": 1.0,
                       "deploy.agent_cmd_ms": 2.0,
                       "deploy.agent_node_ms": 1.0}, ("b",)):
        fails.append("smoke_problems rejects good figures")
    if smoke_problems({"deploy.cmd_ms": 0}, ("b",)) != [
            "missing or non-positive deploy.first_ms",
            "missing or non-positive deploy.cmd_ms",
            "missing or non-positive deploy.node_ms",
            "missing or non-positive deploy.module_bytes",
            "missing or non-positive deploy.agent_first_ms",
            "missing or non-positive deploy.agent_cmd_ms",
            "missing or non-positive deploy.agent_node_ms"]:
        fails.append("smoke_problems misses gaps")
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "s.jsonl")
        s = Sink(p)
        with open(p, "w") as f:
            f.write('{"msg":{"v":"v1"}}\n{"msg":{"v":')
        if tags_in(s.new_lines()) != ["v1"]:
            fails.append("Sink: first complete line")
        with open(p, "a") as f:
            f.write('"v2"}}\n')
        if tags_in(s.new_lines()) != ["v2"]:
            fails.append("Sink: torn line completed")
    return fails


if __name__ == "__main__":
    f = selftest()
    for x in f:
        print("deploy.py selftest FAILED: " + x)
    sys.exit(1 if f else 0)
