#!/usr/bin/env bash
# test_live_agent.sh ISOFLOW STAGES_DIR - `isoflow agent`: the deploy
# commands go through a running agent by themselves (its socket is
# CERTS/NAME.agent, mode 0600; with --flow it connects to the nodes at
# start), also two at once over its one link to the
# edge; --no-agent connects directly; --agent PATH with nothing there is an
# error; a second agent on the same socket is refused; an edge restarted
# under the agent is reported UNREACHABLE, then reconnected on the next
# command; after the agent stops (its socket removed) the commands connect
# directly again.  Devices push every 20 ms throughout; at the end every
# seq reached the cloud exactly once and the stored tag versions follow
# the deploys and the rollback.
set -uo pipefail
BIN=$1
SD=$(cd "$2" && pwd)
. "$(dirname "$0")/../common/testlib.sh"
. "$(dirname "$0")/test_live_lib.sh"

live_setup 34
M=$T/m
SOCK=$T/certs/operator.agent

# Nothing answers there yet.
deploy --node room-0 --stage tag --agent "$SOCK" "$M/lv_tag2.wasm"
expect "--agent without an agent: exit" 1 "$rc"
expect "--agent without an agent: message" "isoflow: deploy: no agent answers on $SOCK (start one with 'isoflow agent', or leave --agent out)" "$err"
check "--agent with --no-agent" 2 "" "isoflow: deploy: --agent and --no-agent exclude each other" \
    -- "$BIN" deploy --flow "$T/n.flow" --node room-0 --stage tag --agent x --no-agent "$M/lv_tag2.wasm"

start_all
"$BIN" agent --certs "$T/certs" --flow "$T/n.flow" >>"$T/log/agent" 2>&1 &
AGENT=$!
PIDS+=($AGENT)
for i in $(seq 1 100); do
    [ -S "$SOCK" ] && [ "$(grep -c '^isoflow: agent: connected to' "$T/log/agent")" = 2 ] && break
    sleep 0.05
done
expect "agent socket mode" 600 "$(stat -c %a "$SOCK" 2>&1)"
expect "agent --flow: the edge and the cloud connected before any command" \
    "cloud edge" "$(sed -n 's/^isoflow: agent: connected to \([a-z]*\) .*/\1/p' "$T/log/agent" | sort | xargs)"
check "a second agent" 1 "" "isoflow: agent: another agent is running on $SOCK" \
    -- "$BIN" agent --certs "$T/certs"

# Through the agent (found by itself) and its kept link.
deploy --node room-0 --stage tag "$M/lv_tag2.wasm" --watch 1 --wait first --json
expect "deploy through the agent: exit" 0 "$rc"
expect "deploy through the agent: first event, summary" \
    "room-0 first ok; running 1 via agent" "$(python3 -c '
import json, sys, time
ls = [json.loads(l) for l in sys.stdin.read().splitlines()]
fi = [j for j in ls if j.get("event") == "first"][0]
ok = 0 < fi["at_ns"] <= time.monotonic_ns()
s = ls[-1]
print("%s first %s; running %d via %s" % (fi["node"], "ok" if ok else "bad",
      s["running"], s["via"]))' <<<"$out" 2>&1)"
versions --node room-0 --stage tag
expect "versions through the agent: exit" 0 "$rc"
has_line "versions through the agent" "stage tag on room-0: active version 1"

# Two commands at once share the agent's link to the edge.
"$BIN" deploy --flow "$T/n.flow" --certs "$T/certs" --node room-1 \
    --stage tag "$M/lv_tag3.wasm" --watch 2 >"$T/bg.out" 2>&1 &
bg=$!
sleep 0.1
deploy --node room-0 --stage tag "$M/lv_tag3.wasm" --watch 1
expect "concurrent deploys through the agent: exit" 0 "$rc"
matches "concurrent deploys through the agent: summary" "^deployed stage tag v2: 1 healthy, 0 rolled back, 0 rejected, 0 unreachable of 1 node in [0-9.]+ s \(through the agent\)$"
wait $bg
expect "the other concurrent deploy: exit" 0 "$?"
expect "the other concurrent deploy: summary" 1 "$(grep -Ec '^deployed stage tag v1: 1 healthy, .* \(through the agent\)$' "$T/bg.out")"
expect "the agent connected to the edge once" 1 "$(grep -c 'connected to edge' "$T/log/agent")"
deploy --node room-2 --stage tag "$M/lv_tag2.wasm" --watch 1 --no-agent
expect "--no-agent: exit" 0 "$rc"
matches "--no-agent: summary" "^deployed stage tag v1: 1 healthy, 0 rolled back, 0 rejected, 0 unreachable of 1 node in [0-9.]+ s$"

# The edge goes away under the agent, then comes back.
stop edge
sleep 0.5
deploy --node room-0 --stage tag "$M/lv_tag2.wasm" --watch 1
expect "edge gone: exit" 1 "$rc"
matches "edge gone: unreachable" "^room-0: UNREACHABLE: (cannot connect to edge|connection to edge lost)"
start edge
sleep 2
rollback --node room-0 --stage tag --watch 1
expect "rollback through the agent after the edge restarted: exit" 0 "$rc"
matches "rollback summary" "^rolled back stage tag v1: 1 healthy, .* \(through the agent\)$"

# The agent stops: its socket goes, the commands connect directly.
kill -TERM "$AGENT"
wait "$AGENT"
expect "agent exit status" 0 "$?"
expect "agent socket removed" no "$([ -e "$SOCK" ] && echo yes || echo no)"
matches_file() { grep -Eq "$2" "$T/log/agent" && ok || bad "$1" "$(cat "$T/log/agent")"; }
matches_file "agent log: stopping" "^isoflow: agent: stopping \([0-9]+ requests relayed\)$"
deploy --node room-1 --stage tag "$M/lv_tag2.wasm" --watch 1 --json
expect "after the agent: exit" 0 "$rc"
expect "after the agent: direct" direct "$(python3 -c '
import json, sys
print(json.loads(sys.stdin.read().splitlines()[-1])["via"])' <<<"$out" 2>&1)"

stop_all
if check_sink "room-0=1,2,3,2;room-1=1,3,2;room-2=1,2" >"$T/sink" 2>&1; then
    ok
else
    bad "cloud sink per device" "$(cat "$T/sink")"
fi
live_finish deploy-live-agent
