# Sourced by the bench scripts: a temporary folder, the processes they start (killed and
# reaped on exit, also on failure or Ctrl-C), and the wait for a server's address.
# The caller sets `name` (its script's name, for messages) before sourcing.
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# Waits (at most 20 s) for `listening on ADDR` in file $1 and prints ADDR.
listening() {
  local i
  for i in $(seq 1 400); do
    if grep -q '^listening on ' "$1" 2>/dev/null; then
      sed -n 's/^listening on //p' "$1" | head -1
      return 0
    fi
    sleep 0.05
  done
  echo "$name: no 'listening on' in $1: $(cat "$1" "$1.err" 2>/dev/null)" >&2
  return 1
}
