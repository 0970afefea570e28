#!/usr/bin/env bash
# Side-by-side DHT benchmark (issue 9 §4 / targets), in ONE run, on loopback:
#   ours:   NODES `rpcudp dht run` nodes (default settings), each joined through the first
#   python: NODES Python kademlia 2.2.3 nodes (py/kademlia_node.py serve), likewise
# KEYS keys are stored in each network (ours: one-shot `rpcudp dht set` per key; Python:
# one client process setting them all), then KILL_FRACTION of the nodes of each network
# are SIGKILLed without warning (every 4th node; never the first), then every key is got
# through the surviving nodes by PAR parallel clients:
#   ours:   one one-shot `rpcudp dht get` process per key; its time is the whole process
#           (start, join, lookup, shutdown), so it pays more than the Python figure;
#   python: PAR client processes (py/kademlia_timed_client.py), each joined once, timing
#           each `Server.get` alone.
# Prints and writes get success rate and p50/p90/p99/max get time for both:
# $OUT/dht_latest.json, $OUT/dht_latest.md and $OUT/dht_chart.svg.
#
#   bash bench/dht_compare.sh                 # 60 nodes each, 100 keys (a few minutes)
#   NODES=12 KEYS=20 bash bench/dht_compare.sh  # a quick check
#
# Every process it starts is killed on exit (also on Ctrl-C or failure). Not part of the
# test suite: it measures, it does not assert.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
NODES=${NODES:-60}
KEYS=${KEYS:-100}
PAR=${PAR:-5}
KILL_EVERY=${KILL_EVERY:-4}
OUT=${OUT:-$root/bench/results}
PY=${PY:-$root/.venv/bin/python}
target=${CARGO_TARGET_DIR:-$root/target}
if [ "${NO_BUILD:-0}" != 1 ]; then
  cargo build --release -q -p rpcudp-cli
fi
BIN=${BIN:-$target/release/rpcudp}
[ -x "$PY" ] || { echo "dht_compare.sh: no Python at $PY (run scripts/setup-python.sh)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "dht_compare.sh: no rpcudp at $BIN" >&2; exit 1; }

name=dht_compare.sh
# shellcheck source=bench/common.sh
source "$root/bench/common.sh"

# start_net KIND: starts NODES nodes; their addresses go to $tmp/KIND.addrs, pids to
# $tmp/KIND.pids.
start_net() {
  local kind=$1 i first="" out
  : >"$tmp/$kind.addrs"
  : >"$tmp/$kind.pids"
  for i in $(seq 0 $((NODES - 1))); do
    out="$tmp/$kind.$i.out"
    if [ "$kind" = ours ]; then
      if [ -z "$first" ]; then
        "$BIN" dht run --bind 127.0.0.1:0 >"$out" 2>"$out.err" &
      else
        "$BIN" dht run --bind 127.0.0.1:0 --bootstrap "$first" >"$out" 2>"$out.err" &
      fi
    else
      # shellcheck disable=SC2086
      "$PY" py/kademlia_node.py serve $first >"$out" 2>"$out.err" &
    fi
    pids+=($!)
    echo $! >>"$tmp/$kind.pids"
    local addr
    addr=$(listening "$out")
    [ -z "$first" ] && first=$addr
    echo "$addr" >>"$tmp/$kind.addrs"
  done
}

kill_some() {
  local kind=$1 i=0 pid
  while read -r pid; do
    if [ $((i % KILL_EVERY)) = $((KILL_EVERY - 1)) ]; then
      kill -KILL "$pid" 2>/dev/null || true
      echo "$i" >>"$tmp/$kind.killed"
    fi
    i=$((i + 1))
  done <"$tmp/$kind.pids"
  : >"$tmp/$kind.alive"
  i=0
  while read -r addr; do
    if ! grep -qx "$i" "$tmp/$kind.killed"; then echo "$addr" >>"$tmp/$kind.alive"; fi
    i=$((i + 1))
  done <"$tmp/$kind.addrs"
}

now_ms() { date +%s%3N; }

echo "== starting $NODES nodes of ours and $NODES Python kademlia 2.2.3 nodes"
start_net ours
start_net python
# Joins run in the background (a ping and a lookup each); give them time to settle.
sleep 3

mapfile -t ours_addrs <"$tmp/ours.addrs"
mapfile -t py_addrs <"$tmp/python.addrs"

echo "== storing $KEYS keys in each network"
for k in $(seq 0 $((KEYS - 1))); do
  through=${ours_addrs[$(((k * 7 + 1) % NODES))]}
  "$BIN" dht set --bootstrap "$through" "key-$k" "value-$k" >>"$tmp/ours.sets" 2>>"$tmp/ours.sets.err" || true
done
ours_stored=$(grep -c '^stored on [1-9]' "$tmp/ours.sets" || true)
py_args=()
for k in $(seq 0 $((KEYS - 1))); do py_args+=("key-$k" str "value-$k"); done
"$PY" py/kademlia_node.py set "${py_addrs[1]}" "${py_args[@]}" >"$tmp/python.sets" 2>"$tmp/python.sets.err" || true
py_stored=$(grep -c '^stored True' "$tmp/python.sets" || true)
echo "   ours: $ours_stored/$KEYS acknowledged; python: $py_stored/$KEYS acknowledged"

echo "== SIGKILL every ${KILL_EVERY}th node of each network"
kill_some ours
kill_some python
mapfile -t ours_alive <"$tmp/ours.alive"
mapfile -t py_alive <"$tmp/python.alive"
echo "   ours: ${#ours_alive[@]} alive; python: ${#py_alive[@]} alive"

echo "== getting every key through the survivors ($PAR clients in parallel each)"
ours_worker() {
  local w=$1 k through t0 t1 got
  for k in $(seq "$w" "$PAR" $((KEYS - 1))); do
    through=${ours_alive[$(((k * 3 + w) % ${#ours_alive[@]}))]}
    t0=$(now_ms)
    got=$("$BIN" dht get --bootstrap "$through" "key-$k" 2>/dev/null || true)
    t1=$(now_ms)
    if [ "$got" = "value-$k" ]; then r=found; else r=missing; fi
    echo "get key-$k $((t1 - t0)) $r"
  done >"$tmp/ours.gets.$w"
}
for w in $(seq 0 $((PAR - 1))); do
  ours_worker "$w" &
  pids+=($!)
done
for w in $(seq 0 $((PAR - 1))); do
  keys=()
  for k in $(seq "$w" "$PAR" $((KEYS - 1))); do keys+=("key-$k"); done
  "$PY" py/kademlia_timed_client.py "${py_alive[$((w % ${#py_alive[@]}))]}" "${keys[@]}" \
    >"$tmp/python.gets.$w" 2>"$tmp/python.gets.$w.err" &
  pids+=($!)
done
wait_started=$(date +%s)
for p in "${pids[@]: -$((2 * PAR))}"; do wait "$p" || true; done
echo "   done in $(($(date +%s) - wait_started)) s"
cat "$tmp"/ours.gets.* >"$tmp/ours.gets"
cat "$tmp"/python.gets.* 2>/dev/null | grep '^get ' >"$tmp/python.gets" || true

mkdir -p "$OUT"
python3 - "$tmp/ours.gets" "$tmp/python.gets" "$OUT" "$NODES" "$KEYS" "$ours_stored" "$py_stored" \
  "${#ours_alive[@]}" "${#py_alive[@]}" "$tmp/python.sets.err" <<'EOF'
import json, sys
ours_f, py_f, out, nodes, keys, ours_stored, py_stored, ours_alive, py_alive, py_sets = sys.argv[1:]
keys = int(keys)

def load(path):
    rows = []
    for line in open(path):
        parts = line.split()
        if len(parts) == 4 and parts[0] == "get":
            rows.append((float(parts[2]), parts[3] == "found"))
    return rows

def pct(sorted_ms, p):
    if not sorted_ms:
        return None
    i = min(len(sorted_ms) - 1, max(0, int(round(p / 100.0 * len(sorted_ms) + 0.5)) - 1))
    return sorted_ms[i]

def summary(rows, stored, alive):
    ms = sorted(r[0] for r in rows)
    found = sum(1 for r in rows if r[1])
    return {
        "keys": keys, "acknowledged_sets": int(stored), "alive_after_kill": int(alive),
        "gets": len(rows), "found": found,
        "success_rate": found / keys if keys else 0.0,
        "get_ms_p50": pct(ms, 50), "get_ms_p90": pct(ms, 90),
        "get_ms_p99": pct(ms, 99), "get_ms_max": ms[-1] if ms else None,
    }

def set_times(path):
    # "set_ms 12.345" on the client's stderr: the time of each set (kademlia_node.py set).
    ms = []
    for line in open(path):
        parts = line.split()
        if len(parts) == 2 and parts[0] == "set_ms":
            ms.append(float(parts[1]))
    return sorted(ms)

result = {
    "nodes": int(nodes),
    "ours": summary(load(ours_f), ours_stored, ours_alive),
    "python": summary(load(py_f), py_stored, py_alive),
}
py_set_ms = set_times(py_sets)
result["python"]["set_ms_p50"] = pct(py_set_ms, 50)
result["python"]["set_ms_p99"] = pct(py_set_ms, 99)
json.dump(result, open(out + "/dht_latest.json", "w"), indent=2)

def f(v):
    return "-" if v is None else ("%.0f" % v if v >= 100 else "%.1f" % v)

o, p = result["ours"], result["python"]
md = [
    "| after killing 25%% of %s nodes, %d keys | ours (`rpcudp dht get`, one-shot process) | Python `kademlia` 2.2.3 (`Server.get`) |" % (nodes, keys),
    "| --- | --- | --- |",
    "| sets acknowledged before the kill | %d/%d | %d/%d |" % (o["acknowledged_sets"], keys, p["acknowledged_sets"], keys),
    "| gets that found the value | %d/%d (%.1f%%) | %d/%d (%.1f%%) |" % (o["found"], keys, 100 * o["success_rate"], p["found"], keys, 100 * p["success_rate"]),
]
for label, key in [("p50", "get_ms_p50"), ("p90", "get_ms_p90"), ("p99", "get_ms_p99"), ("max", "get_ms_max")]:
    md.append("| get time %s (ms) | %s | %s |" % (label, f(o[key]), f(p[key])))
open(out + "/dht_latest.md", "w").write("\n".join(md) + "\n")
print("\n".join(md))

# The chart: p50/p90/p99/max per side, log-scaled bars (milliseconds).
import math
W, H, left, top, bar = 640, 300, 120, 40, 16
labels = ["p50", "p90", "p99", "max"]
vals = {"ours": [o["get_ms_" + l] or 0 for l in ["p50", "p90", "p99", "max"]],
        "python": [p["get_ms_" + l] or 0 for l in ["p50", "p90", "p99", "max"]]}
top_ms = max([1.0] + vals["ours"] + vals["python"])
scale = lambda v: 0 if v <= 0 else (W - left - 80) * math.log10(1 + v) / math.log10(1 + top_ms)
svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, H),
       '<text x="10" y="20" font-size="14">DHT get time after 25%% of %s nodes were killed (ms, log scale)</text>' % nodes]
y = top
for i, l in enumerate(labels):
    for side, colour in [("ours", "#2b6cb0"), ("python", "#c05621")]:
        v = vals[side][i]
        svg.append('<text x="10" y="%d">%s %s</text>' % (y + 12, l, side))
        svg.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>' % (left, y, scale(v), bar, colour))
        svg.append('<text x="%.1f" y="%d">%s</text>' % (left + scale(v) + 4, y + 12, f(v)))
        y += bar + 4
    y += 10
svg.append('<text x="10" y="%d">found: ours %d/%d, python %d/%d</text>' % (H - 10, o["found"], keys, p["found"], keys))
svg.append("</svg>")
open(out + "/dht_chart.svg", "w").write("\n".join(svg) + "\n")
EOF
echo "wrote $OUT/dht_latest.json, $OUT/dht_latest.md, $OUT/dht_chart.svg"
