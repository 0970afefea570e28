#!/usr/bin/env bash
# The whole test suite: installs the Python peers if missing, then runs every test of the
# workspace (unit, integration, interop, network-namespace, doc tests; examples build) and
# prints one closing line adding up every test binary's counts.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup-python.sh
export RPCUDP_PYTHON="$root/.venv/bin/python"
export RPCUDP_STORJ_PATH="$root/.venv/storj"
# Interop tests fail (rather than skip) when the peers are missing.
export RPCUDP_REQUIRE_INTEROP=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --all-targets "$@" 2>&1 | tee "$log"
cargo test --workspace --doc "$@" 2>&1 | tee -a "$log"
# The Python package (python/, module rpcudp_rs): built into .venv with maturin, then its
# pytest suite against the real peers and the `rpcudp` binary just built.
PATH="$root/.venv/bin:$PATH" "$root/.venv/bin/pip" install -q --no-build-isolation ./python
RPCUDP_BIN="$root/target/debug/rpcudp" "$root/.venv/bin/python" -m pytest -q -p no:cacheprovider \
  python/tests 2>&1 | tee -a "$log"
# "ignored" tests are the namespace helpers that the outer tests re-run inside a namespace.
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     /^=*[ ]*[0-9]+ (passed|failed)/ && / in [0-9.]+s/ {
       for (n = 1; n < NF; n++) {
         if ($(n+1) == "passed") p += $n; if ($(n+1) == "failed") f += $n
         if ($(n+1) == "skipped") i += $n
       } }
     END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, i }' FS='[ ;.,]+' "$log"
