"""smoke.py - the bench-smoke-nodes test: one tiny throughput run of
nodes.py (cloud, edge, 2 devices over mutual TLS, ~3 s, demand mode) in a
build, checking that it completes, that messages were counted at the cloud
sink and that the sink logged its latency line.  No timing assertions.

usage: smoke.py BUILD_DIR
"""

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nodes  # noqa: E402


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    build = os.path.abspath(sys.argv[1])
    scr = tempfile.mkdtemp(prefix="isoflow-bench-smoke-nodes-")
    try:
        cl = nodes.Cluster([os.path.join(build, "isoflow")],
                           os.path.join(build, "stages"), scr, 2)
        fig = nodes.throughput_run(cl, "demand", 2, 0, 3, print)
        lat = nodes.parse_lat(cl.log("cloud"))
        ok = True
        if not lat or lat[0] <= 0:
            print("FAIL: no messages counted by the cloud sink: %r" % (lat,))
            ok = False
        if fig["msgs"] <= 0 or fig["p50_us"] <= 0 or \
                fig["p99_us"] < fig["p50_us"]:
            print("FAIL: figures %r" % fig)
            ok = False
        print("%s: %d messages at the cloud, p50 %d us, p99 %d us"
              % ("ok" if ok else "FAIL", lat[0] if lat else 0,
                 fig["p50_us"], fig["p99_us"]))
        return 0 if ok else 1
    except nodes.NodeBenchError as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        shutil.rmtree(scr, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
