#!/usr/bin/env bash
# A short bounded run of every fuzz target (fuzz/README.md has the long runs): installs
# cargo-fuzz and the nightly toolchain if missing, builds the targets once, then runs
# each for FUZZ_SECONDS (default 25) from the committed seeds and reproducers. Any crash,
# failed assertion, leak or timeout fails the script (and so CI); libFuzzer leaves the
# input in fuzz/artifacts/<target>/ (rerun it with `cargo +nightly fuzz run <target> FILE`).
#
# Usage: scripts/fuzz-smoke.sh [TARGET…]   (default: every target)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
secs=${FUZZ_SECONDS:-25}
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
  cargo +nightly fuzz build
else
  for t in "${targets[@]}"; do cargo +nightly fuzz build "$t"; done
fi
for t in "${targets[@]}"; do
  dirs=("corpus/$t")
  mkdir -p "corpus/$t"
  for d in "seeds/$t" "regressions/$t"; do
    [ -d "$d" ] && dirs+=("$d")
  done
  echo "== fuzz $t for ${secs}s (${dirs[*]})"
  log=$(mktemp)
  # -rss_limit_mb / -malloc_limit_mb: runaway memory is a failure too; -timeout: one
  # input taking 10 s is a hang.
  if ! cargo +nightly fuzz run "$t" "${dirs[@]}" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
      -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz-smoke: $t FAILED (input in fuzz/artifacts/$t/)" >&2
    rm -f "$log"
    exit 1
  fi
  grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true
  rm -f "$log"
done
echo "fuzz-smoke: ${#targets[@]} targets, no crash"
