"""dialect="storj" against the real storjrpcudp 2.5 (Twisted, in a child process): both
ways, with the call-file format of py/storj_client.py."""

import asyncio
import os
import tempfile

import umsgpack

from conftest import PYTHON, ROOT, python_env, storj_path
from rpcudp_rs.protocol import RPCProtocol

CALLS = [["ping", []], ["echo", [1, "two", b"3", None, 1.5, True, [4], {"k": "v"}]],
         ["add", [2, 3]], ["stun", []]]


class Service(RPCProtocol):
    def rpc_ping(self, sender):
        return "pong"

    def rpc_echo(self, sender, *args):
        return list(args)

    def rpc_add(self, sender, a, b):
        return a + b

    def rpc_stun(self, sender):
        return [sender[0], sender[1]]


async def read_line(proc, prefix):
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line, "child exited"
        if line.startswith(prefix):
            return line[len(prefix):].strip()


async def test_ours_calls_a_storjrpcudp_server_in_the_storj_dialect():
    env = python_env(storj_path())
    proc = await asyncio.create_subprocess_exec(
        PYTHON, str(ROOT / "py/storj_server.py"), "127.0.0.1:0", env=env,
        stdout=asyncio.subprocess.PIPE)
    try:
        host, port = (await read_line(proc, "listening on ")).rsplit(":", 1)
        loop = asyncio.get_running_loop()
        t, client = await loop.create_datagram_endpoint(
            lambda: RPCProtocol(wait_timeout=5, dialect="storj"), local_addr=("127.0.0.1", 0))
        addr = (host, int(port))
        assert await client.ping(addr) == (True, "pong")
        assert await client.echo(addr, *CALLS[1][1]) == (True, CALLS[1][1])
        assert await client.add(addr, 2, 3) == (True, 5)
        assert await client.stun(addr) == (True, ["127.0.0.1", t.get_extra_info("sockname")[1]])
        t.close()
    finally:
        proc.kill()
        await proc.wait()


async def test_a_storjrpcudp_client_calls_ours_in_the_storj_dialect():
    loop = asyncio.get_running_loop()
    t, _ = await loop.create_datagram_endpoint(
        lambda: Service(dialect="storj"), local_addr=("127.0.0.1", 0))
    port = t.get_extra_info("sockname")[1]
    with tempfile.TemporaryDirectory() as d:
        calls, results = os.path.join(d, "calls"), os.path.join(d, "results")
        with open(calls, "wb") as f:
            f.write(umsgpack.packb(CALLS))
        proc = await asyncio.create_subprocess_exec(
            PYTHON, str(ROOT / "py/storj_client.py"), f"127.0.0.1:{port}", "calls", calls,
            results, "5", env=python_env(storj_path()))
        try:
            assert await asyncio.wait_for(proc.wait(), 60) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
        with open(results, "rb") as f:
            got = umsgpack.unpackb(f.read())
    t.close()
    assert got[0] == [True, "pong"]
    assert got[1] == [True, CALLS[1][1]]
    assert got[2] == [True, 5]
    assert got[3][0] is True and got[3][1][0] == "127.0.0.1"
