"""rpcudp_rs.kademlia.Server as a drop-in for kademlia 2.2.3's Server: kademlia's README
example and upstream test_storing with the import changed, a mixed network of our
servers, Python kademlia servers and `rpcudp dht run` nodes, save_state / load_state in
kademlia's format, state_dir= surviving kill -9."""

import asyncio
import os
import pickle
import signal

import pytest
from kademlia.network import Server as PyServer

from conftest import PYTHON, free_port, rpcudp_bin
from rpcudp_rs.kademlia import Server, digest


@pytest.fixture()
def bootstrap_node(event_loop):
    # kademlia's own conftest fixture with the import changed (and a free port instead
    # of 8468, which other tests on this machine may hold).
    server = Server()
    port = free_port()
    event_loop.run_until_complete(server.listen(port, "127.0.0.1"))
    try:
        yield ("127.0.0.1", port)
    finally:
        server.stop()


@pytest.mark.asyncio
async def test_storing(bootstrap_node):
    # kademlia 2.2.3's tests/test_server.py::test_storing, the import changed (the next
    # port may be taken: a free one instead).
    server = Server()
    await server.listen(free_port())
    await server.bootstrap([bootstrap_node])
    await server.set("key", "value")
    result = await server.get("key")

    assert result == "value"

    server.stop()


async def test_readme_example_with_only_the_import_changed():
    # kademlia's README: a first node, then a node that bootstraps to it, sets and gets.
    node = Server()
    await node.listen(free_port(), "127.0.0.1")
    first = ("127.0.0.1", node._dht.local_addr()[1])
    other = Server()
    await other.listen(free_port(), "127.0.0.1")
    await other.bootstrap([first])
    await other.set("my-key", "my awesome value")
    result = await other.get("my-key")
    assert result == "my awesome value"
    assert await node.get("my-key") == "my awesome value"
    other.stop()
    node.stop()


async def test_values_of_every_storable_type_and_type_errors_as_kademlia():
    a, b = Server(), Server()
    await a.listen(free_port(), "127.0.0.1")
    await b.listen(free_port(), "127.0.0.1")
    try:
        await b.bootstrap([("127.0.0.1", a._dht.local_addr()[1])])
        for i, v in enumerate([1, -5, 2.5, True, "str", b"\x00bytes"]):
            assert await b.set(f"k{i}", v) is True
            assert await a.get(f"k{i}") == v
        for bad in ([1], {"a": 1}, None, (1,)):
            with pytest.raises(TypeError):
                await b.set("bad", bad)
        assert await a.get("never set") is None
        assert len(a.node.id) == 20 and a.node.id != b.node.id
        assert b.bootstrappable_neighbors() == [("127.0.0.1", a._dht.local_addr()[1])]
        assert "rpcudp_" in a.metrics()
    finally:
        a.stop()
        b.stop()


async def test_a_lone_server_sets_false_and_gets_none():
    s = Server()
    await s.listen(free_port(), "127.0.0.1")
    try:
        assert await s.set("k", "v") is False
        assert await s.get("k") is None
    finally:
        s.stop()


async def run_cli(*args, timeout=60):
    proc = await asyncio.create_subprocess_exec(
        rpcudp_bin(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode, out.decode(), err.decode()


async def start_dht_run(port, bootstrap=None, state=None):
    args = ["dht", "run", "--bind", f"127.0.0.1:{port}", "--timeout", "1"]
    if bootstrap:
        args += ["--bootstrap", bootstrap]
    if state:
        args += ["--state", state]
    proc = await asyncio.create_subprocess_exec(
        rpcudp_bin(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert line, "dht run exited"
        if line.startswith("node id "):
            return proc


async def test_a_mixed_network_every_kind_sets_and_every_other_kind_gets():
    procs = []
    ours, pythons = [], []
    try:
        seed_port = free_port()
        procs.append(await start_dht_run(seed_port))
        seed = ("127.0.0.1", seed_port)
        for _ in range(3):
            s = Server(rpc_timeout=1)
            await s.listen(free_port(), "127.0.0.1")
            await s.bootstrap([seed])
            ours.append(s)
        for _ in range(3):
            s = PyServer()
            await s.listen(free_port(), "127.0.0.1")
            await s.bootstrap([seed])
            pythons.append(s)
        procs.append(await start_dht_run(free_port(), f"{seed[0]}:{seed[1]}"))
        await ours[0].bootstrap([seed])
        # Each kind sets a key...
        assert await ours[1].set("from-ours", "ours value") is True
        assert await pythons[1].set("from-python", "python value") is True
        code, out, err = await run_cli("dht", "set", "--bootstrap", f"{seed[0]}:{seed[1]}",
                                       "--timeout", "1", "from-cli", "cli value")
        assert code == 0, err
        # ...and every other kind gets it.
        for key, value in [("from-ours", "ours value"), ("from-python", "python value"),
                           ("from-cli", "cli value")]:
            assert await ours[2].get(key) == value, key
            assert await pythons[2].get(key) == value, key
            code, out, err = await run_cli("dht", "get", "--bootstrap", f"{seed[0]}:{seed[1]}",
                                           "--timeout", "1", key)
            assert (code, out.strip()) == (0, value), err
        # Keys are hashed as kademlia hashes them: non-str keys too.
        assert await pythons[0].set(12345, b"int key") is True
        assert await ours[0].get(12345) == b"int key"
    finally:
        for s in ours + pythons:
            s.stop()
        for p in procs:
            p.kill()
            await p.wait()


async def test_save_state_writes_kademlias_format_and_load_state_reads_both(tmp_path):
    a, b = Server(), Server()
    await a.listen(free_port(), "127.0.0.1")
    await b.listen(free_port(), "127.0.0.1")
    py = None
    try:
        a_addr = ("127.0.0.1", a._dht.local_addr()[1])
        await b.bootstrap([a_addr])
        await b.set("saved", "value")
        fname = str(tmp_path / "state.pickle")
        b.save_state(fname)
        with open(fname, "rb") as f:
            data = pickle.load(f)
        assert data == {"ksize": 20, "alpha": 3, "id": b.node.id, "neighbors": [a_addr]}
        b.stop()
        # Ours reads it: same id, rejoined through the neighbour.
        c = await Server.load_state(fname, free_port(), "127.0.0.1")
        try:
            assert c.node.id == data["id"]
            assert c.bootstrappable_neighbors() == [a_addr]
            assert await c.get("saved") == "value"
        finally:
            c.stop()
        # Python kademlia reads ours.
        py = await PyServer.load_state(fname, free_port(), "127.0.0.1")
        assert py.node.id == data["id"]
        assert await py.get("saved") == "value"
        # And ours reads a file Python kademlia wrote.
        fname2 = str(tmp_path / "py.pickle")
        py.save_state(fname2)
        d = await Server.load_state(fname2, free_port(), "127.0.0.1")
        try:
            assert d.node.id == py.node.id
        finally:
            d.stop()
        # Nothing known: nothing written, as kademlia.
        lone = Server()
        await lone.listen(free_port(), "127.0.0.1")
        lone.save_state(str(tmp_path / "none.pickle"))
        lone.stop()
        assert not (tmp_path / "none.pickle").exists()
    finally:
        a.stop()
        b.stop()
        if py is not None:
            py.stop()


CHILD = r"""
import asyncio, sys
from rpcudp_rs.kademlia import Server
async def main():
    s = Server(state_dir=sys.argv[1])
    await s.listen(0, "127.0.0.1")
    print("node", s._dht.local_addr()[1], s.node.id.hex(), flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
"""


async def test_state_dir_keeps_id_contacts_and_acknowledged_values_through_kill_9(tmp_path):
    # The node with state_dir= runs in a child; this process's node stores on it, and the
    # child is killed -9 right after acknowledging the last store.
    state = str(tmp_path / "state")
    proc = await asyncio.create_subprocess_exec(
        PYTHON, "-c", CHILD, state, stdout=asyncio.subprocess.PIPE)
    writer = Server()
    await writer.listen(free_port(), "127.0.0.1")
    writer_port = writer._dht.local_addr()[1]
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
        assert line[0] == "node", line
        port, node_id = int(line[1]), bytes.fromhex(line[2])
        await writer.bootstrap([("127.0.0.1", port)])
        assert await writer.set("first", "stored a while before") is True
        await asyncio.sleep(1.5)  # contacts are saved within a second of being learned
        assert await writer.set("last", "acknowledged, then kill -9") is True
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        writer.stop()
    again = Server(state_dir=state)
    await again.listen(free_port(), "127.0.0.1")
    try:
        assert again.node.id == node_id
        assert [c[2] for c in again._dht.saved_contacts()] == [writer_port]
        assert again._dht.local_value(digest("first")) == "stored a while before"
        assert again._dht.local_value(digest("last")) == "acknowledged, then kill -9"
        assert await again.get("last") == "acknowledged, then kill -9"
    finally:
        again.stop()
