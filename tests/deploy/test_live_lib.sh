# test_live_lib.sh - shared set-up of the live-update tests (test_live_*.sh;
# sourced, not a test): a CA, node and operator certificates, a trusted and
# an untrusted signing key, signed test modules, a flow with a device stage
# `tag` and an edge stage `etag`, and helpers to start/stop `isoflow node`
# processes and to check the cloud sink per device.  Expects BIN (the
# isoflow binary), SD (built test stages) and testlib.sh's $tmp.
# shellcheck shell=bash

T=$tmp
PIDS=()
declare -A PID
cleanup_live() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$T"
}
trap cleanup_live EXIT

# die WHY: stops the test at once (set-up failures), with the node logs.
die() {
    echo "FAIL: $*" >&2
    for f in "$T"/log/*; do echo "== $f"; tail -8 "$f"; done >&2
    exit 1
}

# live_setup SECONDS: everything before the nodes start; the sources stop
# producing SECONDS from now (STOP_AT).
live_setup() {
    PC=$((20000 + RANDOM % 20000)); PE=$((PC + 1))
    mkdir -p "$T/out" "$T/log" "$T/certs" "$T/keys" "$T/trusted" "$T/m"
    cp "$SD"/*.wasm "$T/m/"
    STOP_AT=$(( $(date +%s) + $1 ))
    # room-3 is declared but never runs: its certificate plays the
    # non-operator deployer.
    cat > "$T/n.flow" <<FLOW
devices rooms "room-%d" x 4 connect edge
node cloud @cloud listen "127.0.0.1:$PC"
node edge  @edge  listen "127.0.0.1:$PE" connect cloud
stage src   @rooms wasm "m/lv_source.wasm" config "stop_at=$STOP_AT"
stage tag   @rooms wasm "m/lv_tag1.wasm"
stage etag  @edge  wasm "m/lv_edge1.wasm"
stage store @cloud jsonl "out/store.jsonl"
flow f: push(src every 20ms) ~> [tag, etag, store]
FLOW
    "$BIN" ca init "$T/ca" >/dev/null || die "ca init"
    for n in cloud:cloud edge:edge room-0:device room-1:device \
             room-2:device room-3:device operator:operator; do
        "$BIN" ca issue "$T/ca" "${n%%:*}" --role "${n##*:}" \
            --out "$T/certs" >/dev/null || die "ca issue $n"
    done
    cp "$T/ca/ca.crt" "$T/certs/"
    "$BIN" key gen release --dir "$T/keys" >/dev/null || die "key gen"
    "$BIN" key gen rogue --dir "$T/keys" >/dev/null || die "key gen rogue"
    cp "$T/keys/release.pub" "$T/trusted/"
    for m in lv_tag2 lv_tag3 lv_tag_trap lv_tag_failinit lv_edge2; do
        "$BIN" sign "$T/keys/release.key" "$T/m/$m.wasm" >/dev/null ||
            die "sign $m"
    done
}

# start NAME: starts node NAME (trusting $T/trusted) in the background.
run_no=0
start() {
    run_no=$((run_no + 1))
    "$BIN" node --flow "$T/n.flow" --name "$1" --certs "$T/certs" \
        --state "$T/state" --trust "$T/trusted" --quiet --workers 1 \
        --dead-letter "$T/dl-$1.jsonl" \
        --stats-json "$T/stats-$1-$run_no.json" >>"$T/log/$1" 2>&1 &
    PID[$1]=$!
    PIDS+=($!)
}
# stop NAME: SIGTERM and wait (a clean stop keeps every seq).
stop() {
    kill -TERM "${PID[$1]}"
    wait "${PID[$1]}" || die "$1 exit status $?"
}
start_all() {
    start cloud; start edge
    start room-0; start room-1; start room-2
    # Up when the cloud has stored something from every device.
    local i
    for i in $(seq 1 100); do
        if [ -f "$T/out/store.jsonl" ] &&
            grep -q '"room-0"' "$T/out/store.jsonl" &&
            grep -q '"room-1"' "$T/out/store.jsonl" &&
            grep -q '"room-2"' "$T/out/store.jsonl"; then
            return 0
        fi
        sleep 0.2
    done
    die "nodes not delivering after 20 s"
}
# stop_all: waits until the sources stopped and everything arrived, then
# stops every node (devices first).
stop_all() {
    while [ "$(date +%s)" -lt $((STOP_AT + 3)) ]; do sleep 0.5; done
    for d in room-0 room-1 room-2; do stop $d; done
    stop edge; stop cloud
}

# deploy ARGS...: `isoflow deploy --flow n.flow --certs certs ARGS` (the
# output in $out/$tmp/stdout, exit status in $rc).
# Every command's output is also kept in $T/log/commands (shown when a
# check failed, or always with LIVE_SHOW=1).
ctl() {
    run "$BIN" "$1" --flow "$T/n.flow" --certs "$T/certs" "${@:2}"
    { echo "\$ isoflow $* (exit $rc)"; cat "$tmp/stdout" "$tmp/stderr"; } \
        >>"$T/log/commands"
}
deploy() { ctl deploy "$@"; }
versions() { ctl versions "$@"; }
rollback() { ctl rollback "$@"; }

# check_sink SPEC: per device, every seq it produced reached the cloud
# exactly once and in order (minus the seqs it dead-lettered), and the
# stored messages follow SPEC: "room-0=1,2;room-2=1,2,3,2" lists the tag
# versions in the order they must appear (each a contiguous run), an
# optional "/e=1,2" the edge versions, and "+n" that the kv counter "n"
# counts 1, 2, 3... without a gap across the swaps.
check_sink() {
    python3 - "$T" "$1" <<'PY'
import json, glob, re, sys, collections
t, spec = sys.argv[1], sys.argv[2]
produced = collections.Counter()
for f in glob.glob(t + "/stats-room-*.json"):
    name = re.search(r"stats-(room-\d)-", f).group(1)
    produced[name] += json.load(open(f))["produced"]
dead = collections.defaultdict(set)
for f in glob.glob(t + "/dl-room-*.jsonl"):
    for line in open(f):
        j = json.loads(line)
        dead["room-%d" % j["device"]].add(j["seq"])
rows = collections.defaultdict(list)
for line in open(t + "/out/store.jsonl"):
    j = json.loads(line)
    rows[j["origin"]].append(j)
ok = True
def runs(vals):
    out = []
    for v in vals:
        if not out or out[-1] != v:
            out.append(v)
    return out
for d in ("room-0", "room-1", "room-2"):
    r = rows[d]
    s = [j["seq"] for j in r]
    want = [x for x in range(1, produced[d] + 1) if x not in dead[d]]
    print(f"{d}: produced {produced[d]}, stored {len(s)}, "
          f"dead-lettered {len(dead[d])}")
    if produced[d] < 100 or s != want:
        missing = sorted(set(want) - set(s))[:10]
        dups = [x for x, c in collections.Counter(s).items() if c > 1][:10]
        print(f"  seqs wrong: missing {missing} dups {dups} "
              f"in order {s == sorted(s)}")
        ok = False
for part in filter(None, spec.split(";")):
    d, rest = part.split("=", 1)
    want_n = rest.endswith("+n")
    rest = rest[:-2] if want_n else rest
    tags, _, etags = rest.partition("/e=")
    r = rows[d]
    got = runs([j["msg"]["v"] for j in r])
    if got != [int(x) for x in tags.split(",")]:
        print(f"  {d}: tag versions in order {got}, want {tags}")
        ok = False
    if etags:
        got = runs([j["msg"]["e"] for j in r])
        if got != [int(x) for x in etags.split(",")]:
            print(f"  {d}: edge versions in order {got}, want {etags}")
            ok = False
    if want_n:
        n = [j["msg"]["n"] for j in r]
        if n != list(range(1, len(n) + 1)):
            bad = [(i, a) for i, a in enumerate(n) if a != i + 1][:5]
            print(f"  {d}: kv counter not continuous: first breaks {bad}")
            ok = False
sys.exit(0 if ok else 1)
PY
}

# live_finish NAME: testlib's finish, with the node logs when a check failed.
live_finish() {
    if [ "$fail" -gt 0 ]; then
        for f in "$T"/log/*; do echo "== $f"; tail -8 "$f"; done
    fi
    if [ "$fail" -gt 0 ] || [ -n "${LIVE_SHOW:-}" ]; then
        cat "$T/log/commands"
    fi
    finish "$1"
}
