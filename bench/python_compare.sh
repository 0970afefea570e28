#!/usr/bin/env bash
# The Python package's benchmark (issue 18 targets), in ONE run on loopback, alternating
# the two implementations ROUNDS times:
#   server  py/rpcudp_server.py (a Python `rpc_ping`) on rpcudp 5.0.1 vs on
#           rpcudp_rs.protocol.RPCProtocol (RPCUDP_PY_IMPL=rs), loaded by `rpcudp bench`
#           with 64 calls in flight; calls/s and the server's CPU per call (utime + stime
#           from /proc/PID/stat, before and after);
#   client  py/bench_rpcudp_client.py (64 calls in flight) on each, against `rpcudp serve`;
#   dht     (DHT=1, the default) bench/dht_compare.sh's Python network of NODES nodes with
#           25% killed, once on kademlia 2.2.3 and once on rpcudp_rs.kademlia.Server: get
#           time p50/p99 and success (its `ours` column, `rpcudp dht run`, comes along).
# Prints medians and ratios and writes $OUT/python_latest.json and .md.
#
#   bash bench/python_compare.sh                        # ROUNDS=3 DURATION=3, DHT with 60 nodes
#   ROUNDS=1 DURATION=1 DHT=0 bash bench/python_compare.sh   # a quick check
#
# Needs .venv with rpcudp_rs installed (scripts/test.sh does it). Every process it starts
# is killed on exit. Not part of the test suite: it measures, it does not assert.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-3}
DHT=${DHT:-1}
NODES=${NODES:-60}
KEYS=${KEYS:-100}
OUT=${OUT:-$root/bench/results}
PY=${PY:-$root/.venv/bin/python}
target=${CARGO_TARGET_DIR:-$root/target}
if [ "${NO_BUILD:-0}" != 1 ]; then
  cargo build --release -q -p rpcudp-cli
fi
BIN=${BIN:-$target/release/rpcudp}
"$PY" -c 'import rpcudp_rs, rpcudp' || { echo "python_compare.sh: $PY lacks rpcudp_rs or rpcudp" >&2; exit 1; }

name=python_compare.sh
# shellcheck source=bench/common.sh
source "$root/bench/common.sh"
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# server IMPL ROUND: a Python server of IMPL (py or rs) under `rpcudp bench`.
server_case() {
  local impl=$1 out="$tmp/server.$1.$2" pid addr c0 c1
  RPCUDP_PY_IMPL=$impl "$PY" py/rpcudp_server.py 127.0.0.1:0 >"$out" 2>/dev/null &
  pid=$!
  pids+=("$pid")
  addr=$(listening "$out")
  c0=$(cpu_ticks "$pid")
  "$BIN" bench "$addr" --concurrency 64 --duration "$DURATION" --json >"$out.json"
  c1=$(cpu_ticks "$pid")
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "{\"case\": \"server\", \"impl\": \"$impl\", \"cpu_ticks\": $((c1 - c0)), \"bench\": $(cat "$out.json")}" >>"$tmp/runs.jsonl"
}

# client IMPL ROUND: a Python client of IMPL against `rpcudp serve`.
client_case() {
  local impl=$1 out="$tmp/client.$1.$2" pid addr
  "$BIN" serve --bind 127.0.0.1:0 >"$out" 2>/dev/null &
  pid=$!
  pids+=("$pid")
  addr=$(listening "$out")
  RPCUDP_PY_IMPL=$impl "$PY" py/bench_rpcudp_client.py "$addr" --concurrency 64 \
    --duration "$DURATION" >"$out.json"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "{\"case\": \"client\", \"impl\": \"$impl\", \"bench\": $(cat "$out.json")}" >>"$tmp/runs.jsonl"
}

for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r/$ROUNDS"
  for impl in py rs; do server_case "$impl" "$r"; done
  for impl in py rs; do client_case "$impl" "$r"; done
done

if [ "$DHT" = 1 ]; then
  echo "== DHT: $NODES nodes, 25% killed, on kademlia 2.2.3"
  OUT="$tmp/dht-py" NO_BUILD=1 BIN="$BIN" NODES=$NODES KEYS=$KEYS bash bench/dht_compare.sh >"$tmp/dht-py.log"
  echo "== DHT: $NODES nodes, 25% killed, on rpcudp_rs.kademlia.Server"
  OUT="$tmp/dht-rs" NO_BUILD=1 BIN="$BIN" NODES=$NODES KEYS=$KEYS RPCUDP_PY_IMPL=rs bash bench/dht_compare.sh >"$tmp/dht-rs.log"
fi

mkdir -p "$OUT"
"$PY" - "$tmp" "$OUT" "$(getconf CLK_TCK)" <<'PYEOF'
import json, os, statistics, sys
tmp, out, hz = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = [json.loads(l) for l in open(os.path.join(tmp, "runs.jsonl"))]
res = {}
for case in ("server", "client"):
    for impl in ("py", "rs"):
        rs = [r for r in runs if r["case"] == case and r["impl"] == impl]
        cps = statistics.median(r["bench"]["calls_per_sec"] for r in rs)
        row = {"calls_per_sec": cps, "p50_us": statistics.median(r["bench"]["p50_us"] for r in rs),
               "p99_us": statistics.median(r["bench"]["p99_us"] for r in rs)}
        if case == "server":
            row["cpu_us_per_call"] = statistics.median(
                1e6 * r["cpu_ticks"] / hz / max(1, r["bench"]["calls"]) for r in rs)
        res[f"{case}_{impl}"] = row
for side in ("py", "rs"):
    p = os.path.join(tmp, f"dht-{side}", "dht_latest.json")
    if os.path.exists(p):
        res[f"dht_{side}"] = json.load(open(p))["python"]
json.dump(res, open(os.path.join(out, "python_latest.json"), "w"), indent=2)
sp, sr, cp, cr = res["server_py"], res["server_rs"], res["client_py"], res["client_rs"]
md = ["| 64 calls in flight, medians | rpcudp 5.0.1 | rpcudp_rs | ratio |", "| --- | --- | --- | --- |",
      "| server: Python `rpc_ping`, calls/s (`rpcudp bench`) | %.0f | %.0f | %.2fx |" % (sp["calls_per_sec"], sr["calls_per_sec"], sr["calls_per_sec"] / sp["calls_per_sec"]),
      "| server CPU per call (us) | %.1f | %.1f | %.2fx less |" % (sp["cpu_us_per_call"], sr["cpu_us_per_call"], sp["cpu_us_per_call"] / sr["cpu_us_per_call"]),
      "| client: Python client vs `rpcudp serve`, calls/s | %.0f | %.0f | %.2fx |" % (cp["calls_per_sec"], cr["calls_per_sec"], cr["calls_per_sec"] / cp["calls_per_sec"])]
if "dht_py" in res and "dht_rs" in res:
    dp, dr = res["dht_py"], res["dht_rs"]
    md += ["", "| DHT, 25%% of %s nodes killed | kademlia 2.2.3 | rpcudp_rs.kademlia | |" % json.load(open(os.path.join(tmp, "dht-py", "dht_latest.json")))["nodes"],
           "| --- | --- | --- | --- |",
           "| sets acknowledged | %d/%d | %d/%d | |" % (dp["acknowledged_sets"], dp["keys"], dr["acknowledged_sets"], dr["keys"]),
           "| gets found | %d/%d | %d/%d | |" % (dp["found"], dp["keys"], dr["found"], dr["keys"])]
    for op in ("set", "get"):
        for q in ("p50", "p99"):
            a, b = dp.get("%s_ms_%s" % (op, q)), dr.get("%s_ms_%s" % (op, q))
            md.append("| %s time %s (ms) | %s | %s | %s |" % (op, q, a, b, "%.1fx faster" % (a / b) if a and b else "-"))
open(os.path.join(out, "python_latest.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
PYEOF
