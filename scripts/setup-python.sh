#!/usr/bin/env bash
# Installs the Python peers used by the interop tests into .venv (idempotent, quick when
# already done). storjrpcudp goes into .venv/storj, apart from rpcudp 5.0.1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
stamp="$venv/.installed-$(cat "$root/py/requirements.txt" "$root/py/requirements-python.txt" | sha1sum | cut -c1-12)"
if [ -f "$stamp" ]; then
  exit 0
fi
python=${PYTHON:-python3}
if ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "setup-python: $python lacks venv/ensurepip; installing python3-venv" >&2
  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
fi
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -r "$root/py/requirements.txt"
"$venv/bin/pip" install -q --disable-pip-version-check --target "$venv/storj" storjrpcudp==2.5
# The Python package's build and test tools (maturin, pytest), apart from the peers' list.
"$venv/bin/pip" install -q --disable-pip-version-check -r "$root/py/requirements-python.txt"
touch "$stamp"
echo "setup-python: peers installed in $venv" >&2
