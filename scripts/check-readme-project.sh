#!/usr/bin/env bash
# Builds the README's "Use it in your project" section as a new user would: a fresh cargo
# project outside the workspace, with exactly the README's [dependencies] lines (the path
# pointed at this checkout) and its example as src/main.rs, then runs it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
section=$(awk '/^## Use it in your project/{on=1; next} on && /^## /{exit} on' "$root/README.md")
toml=$(printf '%s\n' "$section" | awk '/^```toml/{on=1; next} on && /^```/{exit} on')
code=$(printf '%s\n' "$section" | awk '/^```rust/{on=1; next} on && /^```/{exit} on')
if [ -z "$toml" ] || [ -z "$code" ]; then
  echo "check-readme-project: README has no toml/rust block under 'Use it in your project'" >&2
  exit 1
fi
mkdir -p "$dir/app/src"
{
  printf '[package]\nname = "readme-app"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n'
  printf '%s\n' "$toml" | sed "s|\"../rpcudp-rs/crates/rpcudp\"|\"$root/crates/rpcudp\"|"
} >"$dir/app/Cargo.toml"
printf '%s\n' "$code" >"$dir/app/src/main.rs"
# The workspace's lock file, so the same dependency versions are used (and mostly reused
# from the shared target directory instead of built again).
cp "$root/Cargo.lock" "$dir/app/Cargo.lock"
cd "$dir/app"
out=$(CARGO_TARGET_DIR="$root/target/readme-project" cargo run -q)
if [ "$out" != '5 ["hi"]' ]; then
  echo "check-readme-project: the README example printed '$out', expected '5 [\"hi\"]'" >&2
  exit 1
fi
echo "check-readme-project: the README's project builds and runs" >&2
