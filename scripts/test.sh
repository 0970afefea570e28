#!/usr/bin/env bash
# The whole test suite: installs what the tests need if it is missing (the system tools
# with apt-get when root, the Python peers into .venv), then runs every test of the
# workspace to the end (unit, integration, interop, network-namespace, doc tests;
# examples build) and always closes with one line adding up every test binary's counts:
#   summary: N passed, N failed, N skipped
# Exits non-zero when a test failed, a build failed, or a test binary crashed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

log=$(mktemp)
status=0
summary() {
  # "skipped": ignored tests (the namespace helpers that the outer tests re-run inside a
  # namespace) and tests that found a tool missing and printed `SKIP name: reason`
  # (counted by libtest as passed, so moved here).
  # pytest closes with "N passed, N skipped, N failed in T s" (any order, some absent).
  awk '/^test result:/ { p += $4; f += $6; i += $8 }
       /(^|\.\.\. )SKIP [^ ]+: / { s += 1 }
       /^=*[ ]*[0-9]+ (passed|failed|skipped)/ && / in [0-9.]+s/ {
         for (n = 1; n < NF; n++) {
           if ($(n+1) == "passed") p += $n; if ($(n+1) == "failed") f += $n
           if ($(n+1) == "skipped") i += $n
         } }
       END { printf "summary: %d passed, %d failed, %d skipped\n", p - s, f, i + s }' \
    FS='[ ;.,]+' "$log"
  if [ "$status" -ne 0 ] && ! grep -Eq '^test result: .* [1-9][0-9]* failed' "$log"; then
    echo "test.sh: a step failed outside the test counts (exit $status): see above"
  fi
  rm -f "$log"
  exit "$status"
}
trap summary EXIT
# Interrupted: still the summary of what ran, and a failure exit.
trap 'status=130; exit' INT TERM

have() { command -v "$1" >/dev/null 2>&1; }

# System tools, as Debian packages: iproute2's `ip` creates the network namespaces of the
# multicast, broadcast and packet-loss tests; nftables drops packets in them (cli_loss);
# prometheus + promtool scrape and check the metrics (metrics_*, cli_metrics).
need=()
have ip || need+=(iproute2)
{ have prometheus && have promtool; } || need+=(prometheus)
have nft || need+=(nftables)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && have apt-get; then
    echo "test.sh: installing ${need[*]} (apt-get)" >&2
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }; then
      echo "test.sh: apt-get could not install ${need[*]}: the tests needing them skip" >&2
    fi
  else
    echo "test.sh: ${need[*]} missing and not installable here (needs root and apt-get):" \
      "the tests needing them skip and print why" >&2
  fi
fi
# A tool found here must then work in the tests: a test finding it unusable fails
# instead of skipping. A caller (CI) may name the required tools itself.
found=()
have ip && found+=(ip)
have prometheus && have promtool && found+=(prometheus)
have nft && found+=(nft)
export RPCUDP_REQUIRE_TOOLS="${RPCUDP_REQUIRE_TOOLS-${found[*]}}"

if ! bash scripts/setup-python.sh; then
  echo "test.sh: installing the Python peers failed: the interop tests will fail" >&2
fi
export RPCUDP_PYTHON="$root/.venv/bin/python"
export RPCUDP_STORJ_PATH="$root/.venv/storj"
# Interop tests fail (rather than skip) when the peers are missing.
export RPCUDP_REQUIRE_INTEROP=1

cargo test --workspace --all-targets --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
cargo test --workspace --doc --no-fail-fast "$@" 2>&1 | tee -a "$log" || status=$?
# The Python package (python/, module rpcudp_rs): built into .venv, then its pytest suite.
bash scripts/test-python.sh 2>&1 | tee -a "$log" || status=$?
