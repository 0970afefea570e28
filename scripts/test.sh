#!/usr/bin/env bash
# The whole test suite: installs the Python peers if missing, then runs every test of the
# workspace (unit, integration, interop, network-namespace, doc tests; examples build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup-python.sh
export RPCUDP_PYTHON="$root/.venv/bin/python"
export RPCUDP_STORJ_PATH="$root/.venv/storj"
# Interop tests fail (rather than skip) when the peers are missing.
export RPCUDP_REQUIRE_INTEROP=1
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc "$@"
