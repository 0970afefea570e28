#!/usr/bin/env bash
# Side-by-side benchmark (issue 5): in ONE run, alternating, ROUNDS rounds of
#   raw            raw UDP echo ceiling (`rpcudp raw-echo`, tokio, 1 recv + 1 send)
#   raw-blocking   raw UDP echo on a blocking thread (the kernel's floor)
#   raw-batched    raw UDP echo with recvmmsg + sendmmsg/GSO (`raw-echo --batched`)
#   core           `rpcudp raw-echo --rpc-core` (the sans-IO core on the generic driver, answering ping inline,
#                  no handler tasks) + `rpcudp bench`: the core and driver without the Node's handlers
#   core-batched   `raw-echo --rpc-core --batched`: the same (the driver always batches)
#   ours           `rpcudp serve` + `rpcudp bench`
#   py-server      Python rpcudp 5.0.1 server + `rpcudp bench`
#   py-client-ours Python rpcudp client (py/bench_rpcudp_client.py) + `rpcudp serve`
#   py-client-py   Python rpcudp client + Python rpcudp server
#   lt-udp         `rpcudp lt echo --udp` + `rpcudp bench --raw --lt` (when lt exists)
# at each N of CONCURRENCY; then prints medians and ratios (bench-report), and writes
# $OUT/runs.jsonl, $OUT/latest.json, $OUT/latest.md and $OUT/chart.svg. Besides the
# client's view (calls/s, latency), each run records the server's CPU time per call
# (utime + stime from /proc/PID/stat, before and after), which a loaded machine
# disturbs much less than throughput.
#
#   ROUNDS=3 DURATION=3 bash bench/compare.sh          # the real thing (~2 min)
#   ROUNDS=1 DURATION=1 bash bench/compare.sh          # a quick check
#   UPDATE_DOC=1 ...                                    # also refresh BENCHMARKS.md's table
#
# Loopback only; every server it starts is killed on exit (also on Ctrl-C or failure).
# Not part of the test suite: it measures, it does not assert.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-3}
CONCURRENCY=${CONCURRENCY:-"1 64"}
CASES=${CASES:-"raw raw-blocking raw-batched core core-batched ours py-server py-client-ours py-client-py lt-udp"}
OUT=${OUT:-$root/bench/results}
# PIN=1: every server on CPU 0, every client on CPU 1 (taskset), so all cases run in the
# same placement (at N=1 placement decides whether a round trip pays a cross-CPU
# wake-up). Only on an otherwise idle machine: pinned processes cannot move away from
# other work, and on a busy one they wait for time slices (p99 of milliseconds).
# The default, PIN=0, lets the scheduler place them.
PIN=${PIN:-0}
if [ "$PIN" = 1 ] && { [ "$(nproc)" -lt 2 ] || ! command -v taskset >/dev/null; }; then
  echo "compare.sh: PIN=1 needs 2 CPUs and taskset; running unpinned" >&2
  PIN=0
fi
if [ "$PIN" = 1 ]; then on_server=(taskset -c 0); on_client=(taskset -c 1); else on_server=(); on_client=(); fi
PY=${PY:-$root/.venv/bin/python}
target=${CARGO_TARGET_DIR:-$root/target}

if [ "${NO_BUILD:-0}" != 1 ]; then
  cargo build --release -q -p rpcudp-cli -p rpcudp-bench-report
fi
BIN=$target/release/rpcudp
REPORT=$target/release/bench-report
[ -x "$PY" ] || { echo "compare.sh: no Python at $PY (run scripts/setup-python.sh)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD...: starts a server, waits (10 s at most) for `listening on ADDR`,
# and sets $addr.
start() {
  local name=$1
  shift
  "${on_server[@]}" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
  pids+=($!)
  pid=$!
  for _ in $(seq 100); do
    if grep -q '^listening on ' "$tmp/$name.out" 2>/dev/null; then
      addr=$(sed -n 's/^listening on //p' "$tmp/$name.out" | head -1)
      return 0
    fi
    sleep 0.1
  done
  echo "compare.sh: $name did not start: $(cat "$tmp/$name.err")" >&2
  return 1
}

declare -A server server_pid
want() { [[ " $CASES " == *" $1 "* ]]; }
if want raw; then start raw "$BIN" raw-echo --bind 127.0.0.1:0 && server[raw]=$addr && server_pid[raw]=$pid; fi
if want raw-blocking; then start raw-blocking "$BIN" raw-echo --blocking --bind 127.0.0.1:0 && server[raw-blocking]=$addr && server_pid[raw-blocking]=$pid; fi
if want raw-batched; then start raw-batched "$BIN" raw-echo --batched --bind 127.0.0.1:0 && server[raw-batched]=$addr && server_pid[raw-batched]=$pid; fi
if want core; then start core "$BIN" raw-echo --rpc-core --bind 127.0.0.1:0 && server[core]=$addr && server_pid[core]=$pid; fi
if want core-batched; then start core-batched "$BIN" raw-echo --rpc-core --batched --bind 127.0.0.1:0 && server[core-batched]=$addr && server_pid[core-batched]=$pid; fi
if want ours || want py-client-ours; then
  if start ours "$BIN" serve --bind 127.0.0.1:0; then server[ours]=$addr; server_pid[ours]=$pid; fi
fi
if want py-server || want py-client-py; then
  if start py "$PY" py/rpcudp_server.py 127.0.0.1:0; then server[py]=$addr; server_pid[py]=$pid; fi
fi
if want lt-udp; then
  if start lt "$BIN" lt echo --udp --bind 127.0.0.1:0; then server[lt]=$addr; server_pid[lt]=$pid; else echo "compare.sh: skipping lt-udp" >&2; fi
fi

# command CASE N: the client command line of CASE at N calls in flight.
command_of() {
  local case=$1 n=$2 d=$DURATION
  case $case in
    raw) echo "$BIN bench ${server[raw]} --raw -c $n -d $d --json" ;;
    raw-blocking) echo "$BIN bench ${server[raw-blocking]} --raw -c $n -d $d --json" ;;
    raw-batched) echo "$BIN bench ${server[raw-batched]} --raw -c $n -d $d --json" ;;
    core) echo "$BIN bench ${server[core]} -c $n -d $d --json" ;;
    core-batched) echo "$BIN bench ${server[core-batched]} -c $n -d $d --json" ;;
    ours) echo "$BIN bench ${server[ours]} -c $n -d $d --json" ;;
    py-server) echo "$BIN bench ${server[py]} -c $n -d $d --json" ;;
    py-client-ours) echo "$PY py/bench_rpcudp_client.py ${server[ours]} -c $n -d $d" ;;
    py-client-py) echo "$PY py/bench_rpcudp_client.py ${server[py]} -c $n -d $d" ;;
    lt-udp) echo "$BIN bench ${server[lt]} --raw --lt -c $n -d $d --json" ;;
  esac
}
# server_of CASE: which server a case loads.
server_of() {
  case $1 in
    ours | py-client-ours) echo ours ;;
    py-server | py-client-py) echo py ;;
    lt-udp) echo lt ;;
    *) echo "$1" ;;
  esac
}
hz=$(getconf CLK_TCK)
# cpu_ticks PID: user + system CPU ticks of a process so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

available() {
  case $1 in
    raw | raw-blocking | raw-batched | core | core-batched) [ -n "${server[$1]:-}" ] ;;
    ours | py-client-ours) [ -n "${server[ours]:-}" ] ;;
    py-server | py-client-py) [ -n "${server[py]:-}" ] ;;
    lt-udp) [ -n "${server[lt]:-}" ] ;;
    *) return 1 ;;
  esac
}

mkdir -p "$OUT"
# The conditions, for the report: other work on the machine disturbs every number.
export BENCH_ROUNDS=$ROUNDS BENCH_DURATION=$DURATION BENCH_PIN=$PIN
BENCH_DATE=$(date -u +%Y-%m-%dT%H:%MZ)
BENCH_LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
export BENCH_DATE BENCH_LOADAVG_START
runs=$OUT/runs.jsonl
: >"$runs"
read -r -a cases <<<"$CASES"
for round in $(seq "$ROUNDS"); do
  # Rotate the case order each round, so no case always runs first or after the same one.
  k=$(( (round - 1) % ${#cases[@]} ))
  order=("${cases[@]:$k}" "${cases[@]:0:$k}")
  for n in $CONCURRENCY; do
    for case in "${order[@]}"; do
      available "$case" || continue
      cmd=$(command_of "$case" "$n")
      spid=${server_pid[$(server_of "$case")]}
      t0=$(cpu_ticks "$spid")
      if result=$(timeout $((${DURATION%.*} + 60)) "${on_client[@]}" $cmd 2>"$tmp/client.err" | tail -1) && [ -n "$result" ]; then
        t1=$(cpu_ticks "$spid")
        echo "{\"case\":\"$case\",\"n\":$n,\"round\":$round,\"server_cpu_s\":$(awk "BEGIN{print ($t1 - $t0) / $hz}"),\"result\":$result}" >>"$runs"
        printf 'round %s N=%-3s %-15s %s\n' "$round" "$n" "$case" \
          "$(echo "$result" | sed -E 's/.*"calls_per_sec": ?([0-9.]+).*"p50_us": ?([0-9.]+).*/\1 calls\/s, p50 \2 us/')" >&2
      else
        echo "round $round N=$n $case: FAILED: $(tail -3 "$tmp/client.err")" >&2
      fi
    done
  done
done

BENCH_LOADAVG_END=$(cut -d' ' -f1-3 /proc/loadavg)
export BENCH_LOADAVG_END
"$REPORT" "$runs" "$OUT" | tee "$OUT/latest.md"

# UPDATE_DOC=1: put the new table into BENCHMARKS.md (between its latest.md markers).
if [ "${UPDATE_DOC:-0}" = 1 ]; then
  "$PY" - "$OUT/latest.md" BENCHMARKS.md <<'PYEOF'
import sys
table, doc = open(sys.argv[1]).read(), open(sys.argv[2]).read()
start, end = "<!-- latest.md: start -->\n", "<!-- latest.md: end -->"
a, b = doc.index(start) + len(start), doc.index(end)
open(sys.argv[2], "w").write(doc[:a] + table + doc[b:])
PYEOF
  echo "compare.sh: BENCHMARKS.md updated" >&2
fi
