#!/usr/bin/env bash
# test_home.sh ISOFLOW STAGES_DIR FLOW_DIR - the home example end to end
# with a seeded scenario: runs tests/flow/home_test.flow (10 rooms, seed 42,
# exactly 60 readings per room) with the real `isoflow run`, then checks
#  - every count: 600 readings (60 per room, seq 1..60), the readings the
#    cleaner must drop (recomputed here from the raw readings), averages;
#  - the averages, recomputed here from the raw readings with the
#    aggregator's rounding, equal the stored ones byte for byte;
#  - the advice: the rule (2 consecutive averages above 1000 ppm, once per
#    episode, re-armed below 900) applied here to the stored averages gives
#    exactly the stored advice, and that is the expected (golden) set;
#  - every actuation reached the LED of its own room (the LED's log line,
#    prefixed by the runtime with the instance, names the same room, and no
#    LED rejected an actuation), and the figures in --stats-json agree.
# Exits 1 at the first mismatch.
set -u

ISOFLOW=$1
STAGES=$2
FLOWDIR=$3

TMP=$(mktemp -d "${TMPDIR:-/tmp}/isoflow-home.XXXXXX") || exit 1
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_eq() { # what got expected
    [ "$2" = "$3" ] || fail "$1: got '$2', expected '$3'"
    echo "ok: $1 = $3"
}

ln -s "$STAGES" "$TMP/stages"
mkdir "$TMP/out"
cp "$FLOWDIR/home_test.flow" "$TMP/"

# 60 readings at 1/s scaled x100: 0.6 s of schedule; 6 s leaves room for a
# slow (sanitizer) build, and the counts below do not depend on timing.
"$ISOFLOW" run "$TMP/home_test.flow" --duration 6 --time-scale 100 --quiet \
    --stats-json "$TMP/stats.json" --dead-letter "$TMP/dead.jsonl" \
    >"$TMP/run.out" 2>"$TMP/run.log"
rc=$?
if [ $rc -ne 0 ]; then
    cat "$TMP/run.out" "$TMP/run.log" >&2
    fail "isoflow run exited $rc"
fi

# The message inside each jsonl line ({"origin":...,"msg":{...}}).
msgs() { sed -n 's/.*"msg":\({.*}\)}$/\1/p' "$1"; }
field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }

# ---- Raw readings --------------------------------------------------------
msgs "$TMP/out/readings.jsonl" >"$TMP/readings"
expect_eq "readings" "$(wc -l <"$TMP/readings")" 600
for r in 00 01 02 03 04 05 06 07 08 09; do
    seqs=$(grep "\"room\":\"room-$r\"" "$TMP/readings" | field seq | sort -n |
           tr '\n' ' ')
    [ "$seqs" = "$(seq 1 60 | tr '\n' ' ')" ] ||
        fail "room-$r: readings seq are not exactly 1..60: $seqs"
done
echo "ok: every room sent seq 1..60 once"

# Which readings the cleaner must keep (bounds of cleaner.c), and the
# averages of 5 kept readings per room with the aggregator's rounding (half
# away from zero; co2/hum/pres to 0.1, temp to 0.01), in seq order per room.
awk -F'[:,{}"]+' '
function num(k,   i) { for (i = 1; i < NF; i++) if ($i == k) return $(i + 1); return "" }
function rnd(sum, n, d,   q) { q = sum / (n * d); return q < 0 ? -int(-q + 0.5) : int(q + 0.5) }
function fmt(v, dec,   s, a) { s = v < 0 ? "-" : ""; a = v < 0 ? -v : v
    return dec == 1 ? sprintf("%s%d.%01d", s, int(a / 10), a % 10) \
                    : sprintf("%s%d.%02d", s, int(a / 100), a % 100) }
{ room = num("room"); seq = num("seq") + 0
  co2 = num("co2"); temp = num("temp"); hum = num("hum"); pres = num("pres")
  if (co2 < 250 || co2 > 10000 || temp < -40 || temp > 85 || hum < 0 ||
      hum > 100 || pres < 800 || pres > 1200) { dropped++; next }
  line[room, seq] = $0; kept[room, seq] = 1
  rooms[room] = 1 }
END {
  for (room in rooms) {
    n = 0; s1 = s2 = s3 = s4 = 0; mx = -1
    for (seq = 1; seq <= 60; seq++) {
      if (!((room, seq) in kept)) continue
      $0 = line[room, seq]
      c = int(num("co2") * 1000 + 0.5); t = num("temp") * 1000
      t = t < 0 ? -int(-t + 0.5) : int(t + 0.5)
      h = int(num("hum") * 1000 + 0.5); p = int(num("pres") * 1000 + 0.5)
      s1 += c; s2 += t; s3 += h; s4 += p; if (n == 0 || c > mx) mx = c; n++
      if (n == 5) {
        printf "{\"room\":\"%s\",\"n\":5,\"ts\":%s,\"co2\":%s,\"temp\":%s,\"hum\":%s,\"pres\":%s,\"co2_max\":%s}\n",
          room, num("ts"), fmt(rnd(s1, 5, 100), 1), fmt(rnd(s2, 5, 10), 2),
          fmt(rnd(s3, 5, 100), 1), fmt(rnd(s4, 5, 100), 1), fmt(rnd(mx, 1, 100), 1)
        n = 0; s1 = s2 = s3 = s4 = 0
      }
    }
  }
  print dropped + 0 > "/dev/stderr"
}' "$TMP/readings" >"$TMP/averages.expected" 2>"$TMP/dropped.expected" ||
    fail "awk failed"
expect_eq "readings the cleaner must drop" "$(cat "$TMP/dropped.expected")" 8

# ---- Averages --------------------------------------------------------------
msgs "$TMP/out/averages.jsonl" >"$TMP/averages"
expect_eq "averages" "$(wc -l <"$TMP/averages")" 115
sort "$TMP/averages" >"$TMP/a1"
sort "$TMP/averages.expected" >"$TMP/a2"
cmp -s "$TMP/a1" "$TMP/a2" || {
    diff "$TMP/a1" "$TMP/a2" | head -20 >&2
    fail "stored averages differ from the ones recomputed from the readings"
}
echo "ok: the 115 averages match the ones recomputed from the raw readings"

# ---- Advice: the rule applied to the stored averages ----------------------
awk -F'[:,{}"]+' '
function num(k,   i) { for (i = 1; i < NF; i++) if ($i == k) return $(i + 1); return "" }
{ print num("room"), num("ts"), num("co2") }' "$TMP/averages" |
    sort -k1,1 -k2,2n |
    awk '{ if ($1 != room) { room = $1; high = 0; advised = 0 }
           if ($3 > 1000) high++
           else { high = 0; if ($3 < 900) advised = 0 }
           if (high >= 2 && !advised) { advised = 1; print $1, $3 } }' |
    sort >"$TMP/advice.rule"
msgs "$TMP/out/advice.jsonl" |
    sed -n 's/^{"room":"\([^"]*\)","advice":"open window","co2":\([0-9.]*\),"ts":[0-9]*}$/\1 \2/p' |
    sort >"$TMP/advice.got"
expect_eq "advice records" "$(wc -l <"$TMP/advice.got")" \
    "$(msgs "$TMP/out/advice.jsonl" | wc -l)"
cmp -s "$TMP/advice.got" "$TMP/advice.rule" || {
    diff "$TMP/advice.got" "$TMP/advice.rule" >&2
    fail "advice differs from the rule applied to the averages"
}
# The seeded scenario's answer (seed=42, count=60, window=5).
cat >"$TMP/advice.golden" <<'EOF'
room-00 1085.8
room-01 1269.5
room-02 1063.0
room-04 1434.9
room-05 1113.6
room-05 1545.0
room-06 1111.6
room-06 1523.3
room-07 1046.0
room-08 1161.6
room-09 1111.6
EOF
cmp -s "$TMP/advice.got" "$TMP/advice.golden" || {
    diff "$TMP/advice.got" "$TMP/advice.golden" >&2
    fail "advice differs from the seeded scenario's expected set"
}
echo "ok: advice = the rule applied to the averages = the expected 11"
echo "    (9 rooms; room-03 never; room-05 and room-06 in two episodes each)"

# ---- Actuations reached the LED of their own room -------------------------
grep -q 'LED ignored' "$TMP/run.log" && {
    grep 'LED ignored' "$TMP/run.log" >&2
    fail "an LED rejected an actuation"
}
sed -n 's/^\[led \(room-[0-9]*\)\] [a-z]*: \(room-[0-9]*\): LED blinking (open the window: co2 \([0-9.]*\) ppm)$/\1 \2 \3/p' \
    "$TMP/run.log" >"$TMP/leds"
awk '$1 != $2 { exit 1 }' "$TMP/leds" ||
    fail "an LED instance logged another room's blink"
awk '{ print $2, $3 }' "$TMP/leds" | sort >"$TMP/leds.got"
cmp -s "$TMP/leds.got" "$TMP/advice.golden" || {
    diff "$TMP/leds.got" "$TMP/advice.golden" >&2
    fail "LED blinks differ from the advice"
}
echo "ok: each of the 11 actuations blinked the LED of its own room"

# ---- The figures ---------------------------------------------------------
stat() { # stage key
    sed 's/},{/}\n{/g' "$TMP/stats.json" | grep "\"name\":\"$1\"" |
        sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"
}
total() { # key, among the top-level figures before "stages"
    sed 's/,"stages".*//' "$TMP/stats.json" |
        sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}
expect_eq "stats sensor out" "$(stat sensor out)" 600
expect_eq "stats clean in" "$(stat clean in)" 600
expect_eq "stats clean out" "$(stat clean out)" 592
expect_eq "stats agg out" "$(stat agg out)" 115
expect_eq "stats window out" "$(stat window out)" 11
expect_eq "stats led actuations" "$(stat led actuations)" 11
expect_eq "stats total actuations" "$(total actuations)" 11
expect_eq "stats total produced" "$(total produced)" 600
expect_eq "stats total errors" "$(total errors)" 0
[ -s "$TMP/dead.jsonl" ] && fail "dead letters were written"
echo "test_home: all checks passed"
exit 0
