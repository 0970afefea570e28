"""Shared helpers of the rpcudp_rs tests: free ports, the `rpcudp` binary, child
processes that are always killed, and the Python peers' locations (scripts/test.sh sets
RPCUDP_PYTHON / RPCUDP_STORJ_PATH; RPCUDP_REQUIRE_INTEROP=1 makes a missing peer fail)."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port(kind=socket.SOCK_DGRAM):
    """A UDP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rpcudp_bin():
    """The `rpcudp` binary: $RPCUDP_BIN, else target/{debug,release}/rpcudp, else PATH."""
    for candidate in (os.environ.get("RPCUDP_BIN"), ROOT / "target/debug/rpcudp",
                      ROOT / "target/release/rpcudp", shutil.which("rpcudp")):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    if os.environ.get("RPCUDP_REQUIRE_INTEROP") == "1":
        pytest.fail("no rpcudp binary (build it with cargo build)")
    pytest.skip("no rpcudp binary")


def storj_path():
    path = os.environ.get("RPCUDP_STORJ_PATH", str(ROOT / ".venv/storj"))
    if not Path(path, "storjrpcudp").is_dir():
        if os.environ.get("RPCUDP_REQUIRE_INTEROP") == "1":
            pytest.fail(f"storjrpcudp not installed in {path}")
        pytest.skip("storjrpcudp not installed")
    return path


class Child:
    """A child process whose stdout lines are read with a deadline."""

    def __init__(self, args, env=None):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)

    def line_starting(self, prefix, timeout=20):
        deadline = time.monotonic() + timeout
        os.set_blocking(self.proc.stdout.fileno(), True)
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"child exited: {self.proc.stderr.read()}")
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        raise AssertionError(f"no line starting {prefix!r} within {timeout}s")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def children():
    """Processes started by a test, killed at its end whatever happened."""
    started = []

    def start(args, env=None):
        c = Child(args, env)
        started.append(c)
        return c

    yield start
    for c in started:
        c.kill()


def python_env(extra_path=None):
    env = dict(os.environ)
    if extra_path:
        env["PYTHONPATH"] = extra_path
    return env


PYTHON = sys.executable
