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
# "ignored" tests are the namespace helpers that the outer tests re-run inside a namespace.
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, i }' FS='[ ;.]+' "$log"
