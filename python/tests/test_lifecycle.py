"""Importing starts nothing; 100 create/stop cycles of a protocol and of a server leave no
thread, file descriptor or memory growth behind (counted from /proc, in a fresh process)."""

import json
import subprocess

from conftest import PYTHON

IMPORT_ONLY = r"""
import json, os
before = (len(os.listdir("/proc/self/task")), sorted(os.listdir("/proc/self/fd")))
import rpcudp_rs, rpcudp_rs.protocol, rpcudp_rs.kademlia
after = (len(os.listdir("/proc/self/task")), sorted(os.listdir("/proc/self/fd")))
print(json.dumps([before, after]))
"""

CYCLES = r"""
import asyncio, json, os, sys
from rpcudp_rs.protocol import RPCProtocol
from rpcudp_rs.kademlia import Server

def counts():
    with open("/proc/self/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd")), rss

class Echo(RPCProtocol):
    def rpc_echo(self, sender, x):
        return x

async def one_protocol():
    loop = asyncio.get_running_loop()
    st, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    ct, c = await loop.create_datagram_endpoint(RPCProtocol, local_addr=("127.0.0.1", 0))
    assert await c.echo(st.get_extra_info("sockname"), b"x" * 100) == (True, b"x" * 100)
    ct.close(); st.close()
    await asyncio.sleep(0)

async def one_server():
    a, b = Server(), Server()
    await a.listen(0, "127.0.0.1")
    await b.listen(0, "127.0.0.1")
    await b.bootstrap([a._dht.local_addr()])
    assert await b.set("k", "v") is True
    a.stop(); b.stop()

async def main(kind):
    once = one_protocol if kind == "protocol" else one_server
    for _ in range(10):
        await once()
    await asyncio.sleep(0.1)
    first = counts()
    for _ in range(100):
        await once()
    await asyncio.sleep(0.1)
    print(json.dumps([first, counts()]))

asyncio.run(main(sys.argv[1]))
"""


def run(script, *args):
    out = subprocess.run([PYTHON, "-c", script, *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_importing_starts_no_thread_and_opens_no_socket():
    before, after = run(IMPORT_ONLY)
    assert before[0] == after[0] == 1
    assert before[1] == after[1]


def test_100_protocol_cycles_leave_no_threads_fds_or_memory_growth():
    (t0, f0, m0), (t1, f1, m1) = run(CYCLES, "protocol")
    assert (t1, f1) == (t0, f0)
    assert t1 == 1
    assert m1 - m0 < 4096, (m0, m1)  # KiB


def test_100_server_cycles_leave_no_threads_fds_or_memory_growth():
    (t0, f0, m0), (t1, f1, m1) = run(CYCLES, "server")
    assert (t1, f1) == (t0, f0)
    assert t1 == 1
    assert m1 - m0 < 8192, (m0, m1)  # KiB
