#!/usr/bin/env bash
# test_live_fail.sh ISOFLOW STAGES_DIR - live update on running nodes, the
# paths that must change nothing: errors caught before sending (exact
# texts), a version that traps (rolled back by the node, reported with the
# reason), one whose init fails, modules unsigned / tampered / signed by an
# untrusted key (rejected with dp_verify's exact reasons, listed by
# `isoflow versions`), a deployer with a device certificate (refused), a
# target that is not connected, and a canary rollout whose canary traps
# (the other device untouched).  Devices push every 20 ms throughout; at
# the end every seq reached the cloud sink exactly once (dead-lettered
# trapping messages aside) and every stored message is still v1's.
set -uo pipefail
BIN=$1
SD=$(cd "$2" && pwd)
. "$(dirname "$0")/../common/testlib.sh"
. "$(dirname "$0")/test_live_lib.sh"

live_setup 34
M=$T/m

# Errors before anything is sent (no node runs yet).
check "no such stage" 2 "" "isoflow: deploy: no stage 'nope' in $T/n.flow" \
    -- "$BIN" deploy --flow "$T/n.flow" --node room-0 --stage nope "$M/lv_tag2.wasm"
check "no such node" 2 "" "isoflow: no node or device named 'nope' in the flow" \
    -- "$BIN" deploy --flow "$T/n.flow" --node nope --stage tag "$M/lv_tag2.wasm"
check "stage not on that node" 2 "" "isoflow: stage tag does not run on node edge" \
    -- "$BIN" deploy --flow "$T/n.flow" --node edge --stage tag "$M/lv_tag2.wasm"
check "builtin stage" 2 "" "isoflow: deploy: stage store is a builtin (jsonl): only wasm and native stages can be deployed" \
    -- "$BIN" deploy --flow "$T/n.flow" --node cloud --stage store "$M/lv_tag2.wasm"
check "no target option" 2 "" "isoflow: deploy needs exactly one of --node, --layer, --group" \
    -- "$BIN" deploy --flow "$T/n.flow" --stage tag "$M/lv_tag2.wasm"
check "bad strategy" 2 "" "isoflow: --strategy: expected all or canary, got 'some'" \
    -- "$BIN" deploy --flow "$T/n.flow" --node room-0 --stage tag --strategy some "$M/lv_tag2.wasm"
{ printf '\0asm\1\0\0\0'; head -c 1000000 /dev/zero; } >"$T/big.wasm"
check "module too large" 1 "" "isoflow: $T/big.wasm is 1000008 bytes: more than 976896 bytes cannot be deployed (one control frame)" \
    -- "$BIN" deploy --flow "$T/n.flow" --node room-0 --stage tag "$T/big.wasm"
cp "$M/lv_tag2.wasm" "$T/unsigned.wasm"
check "no signature file" 1 "" "isoflow: no signature $T/unsigned.wasm.sig: No such file or directory (sign the module with 'isoflow sign KEY $T/unsigned.wasm')" \
    -- "$BIN" deploy --flow "$T/n.flow" --node room-0 --stage tag "$T/unsigned.wasm"
run "$BIN" deploy --flow "$T/n.flow" --node room-0 --stage tag \
    --certs "$T/nocerts" "$M/lv_tag2.wasm"
expect "bad certificates: exit" 1 "$rc"
expect_ok "bad certificates: message" "$([[ $err == "isoflow: cannot use the operator certificate $T/nocerts/operator.crt (--certs $T/nocerts --as operator): "* ]]; echo $?)" "stderr: $err"

start_all

# A version that traps on its first message: rolled back by the node.
deploy --node room-0 --stage tag "$M/lv_tag_trap.wasm" --watch 2
expect "trap: exit" 1 "$rc"
matches "trap: rolled back" "^room-0: ROLLED BACK to v[0-9]+: trap"
matches "trap: summary" "^deployed stage tag v1: 0 healthy, 1 rolled back, 0 rejected, 0 unreachable of 1 node in [0-9.]+ s$"

# A version whose init fails: nothing changes.
deploy --node room-0 --stage tag "$M/lv_tag_failinit.wasm" --watch 1
expect "failed init: exit" 1 "$rc"
matches "failed init: line" "^room-0: FAILED INIT \(nothing changed\): "
matches "failed init: summary" "^deployed stage tag v2: 0 healthy, 0 rolled back, 0 rejected, 1 failed init, 0 unreachable of 1 node in "

# Unsigned (an empty signature), tampered, signed by an untrusted key.
: >"$T/empty.sig"
deploy --node room-0 --stage tag --sig "$T/empty.sig" "$T/unsigned.wasm"
expect "unsigned: exit" 1 "$rc"
has_line "unsigned: reason" "room-0: REJECTED: unsigned"
matches "unsigned: summary" "^deployed stage tag: 0 healthy, 0 rolled back, 1 rejected, 0 unreachable of 1 node in "
cp "$M/lv_tag2.wasm" "$T/tampered.wasm"
cp "$M/lv_tag2.wasm.sig" "$T/tampered.wasm.sig"
python3 - "$T/tampered.wasm" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x01
open(p, "wb").write(b)
PY
deploy --node room-0 --stage tag "$T/tampered.wasm"
expect "tampered: exit" 1 "$rc"
has_line "tampered: reason" "room-0: REJECTED: tampered (SHA-256 mismatch)"
cp "$M/lv_tag2.wasm" "$T/rogue.wasm"
"$BIN" sign "$T/keys/rogue.key" "$T/rogue.wasm" >/dev/null || die "sign rogue"
rogue_id=$(sed -n 's/^key //p' "$T/rogue.wasm.sig")
deploy --node room-0 --stage tag "$T/rogue.wasm"
expect "wrong key: exit" 1 "$rc"
has_line "wrong key: reason" "room-0: REJECTED: unknown key $rogue_id"

# A device certificate may not deploy (room-3 is declared, not running).
deploy --as room-3 --node room-0 --stage tag "$M/lv_tag2.wasm"
expect "non-operator: exit" 1 "$rc"
has_line "non-operator: refused" "room-0: ERROR: refused: only an operator may deploy (peer room-3 has role device)"

# A device that is not connected.
deploy --node room-3 --stage tag "$M/lv_tag2.wasm"
expect "not connected: exit" 1 "$rc"
has_line "not connected: line" "room-3: UNREACHABLE: node room-3 is not connected"
matches "not connected: summary" "^deployed stage tag: 0 healthy, 0 rolled back, 0 rejected, 1 unreachable of 1 node in "

# The history shows each outcome.
versions --node room-0 --stage tag --json
expect "versions: exit" 0 "$rc"
expect "versions: outcomes" "rolled-back failed-init rejected:unsigned rejected:tampered (SHA-256 mismatch) rejected:unknown key $rogue_id" \
    "$(python3 -c '
import json, sys
j = json.loads(sys.stdin.read())
out = []
for v in j["versions"]:
    o = v["outcome"]
    if o == "rejected":
        o += ":" + v["reason"]
    if o not in ("active", "declared"):
        out.append(o)
print(" ".join(out))' <<<"$out")"
versions --node room-0 --stage tag
matches "versions table: rejected row" "^  0 .* rejected +unsigned$"

# Canary: the canary (room-1) traps, the rollout stops, room-2 untouched.
deploy --group 'room-[12]' --stage tag --strategy canary --canary-time 2 \
    "$M/lv_tag_trap.wasm"
expect "canary: exit" 1 "$rc"
has_line "canary: announced" "canary room-1: watching 2.0 s before the other 1 node"
matches "canary: rolled back" "^room-1: ROLLED BACK to v[0-9]+: trap"
has_line "canary: stopped" "canary room-1 failed: rollout stopped, 1 node left untouched"
matches "canary: summary" "^deployed stage tag v1: 0 healthy, 1 rolled back, 0 rejected, 0 unreachable, 1 not tried \(canary room-1 failed: rollout stopped\) of 2 nodes in "
expect "canary: nothing sent to room-2" 0 "$(grep -c '^room-2:' "$tmp/stdout")"
versions --node room-2 --stage tag --json
expect "room-2 history: nothing deployed" "" "$(python3 -c '
import json, sys
j = json.loads(sys.stdin.read())
print(" ".join(v["outcome"] for v in j["versions"] if v["version"] >= 1))' <<<"$out")"

stop_all
if check_sink "room-0=1+n;room-1=1+n;room-2=1+n" >"$T/sink" 2>&1; then
    ok
else
    bad "cloud sink per device" "$(cat "$T/sink")"
fi
cat "$T/sink"

# Nothing listens any more: every device (--layer) unreachable, with why.
deploy --layer device --stage tag "$M/lv_tag2.wasm" --timeout 5
expect "edge down: exit" 1 "$rc"
expect "edge down: unreachable lines" 4 \
    "$(grep -cE "^room-[0-3]: UNREACHABLE: cannot connect to edge \(127.0.0.1:$PE\): " "$tmp/stdout")"
matches "edge down: summary" "^deployed stage tag: 0 healthy, 0 rolled back, 0 rejected, 4 unreachable of 4 nodes in "
live_finish deploy-live-fail
