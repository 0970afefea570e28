#!/usr/bin/env bash
# The Python package's tests, run by scripts/test.sh after the Rust tests: builds the
# module rpcudp_rs (python/, PyO3 + maturin) into .venv, then runs its pytest suite
# against the real Python peers and the `rpcudp` binary the Rust tests just built.
# pytest's closing line ("N passed, N failed in T s") is counted by test.sh's summary.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if ! PATH="$root/.venv/bin:$PATH" "$root/.venv/bin/pip" install -q --no-build-isolation ./python; then
  echo "test-python.sh: building the Python package (pip install ./python) failed" >&2
  exit 1
fi
RPCUDP_BIN="${CARGO_TARGET_DIR:-$root/target}/debug/rpcudp" \
  "$root/.venv/bin/python" -m pytest -q -p no:cacheprovider python/tests
