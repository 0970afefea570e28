"""rpcudp_rs.protocol.RPCProtocol as a drop-in for rpcudp 5.0.1's RPCProtocol: calls both
ways with the real rpcudp 5.0.1 (in this process), every value type, timeouts, async
handlers, unknown methods and raising handlers, retries, duplicates, storj dialect."""

import asyncio
import logging
import time

import pytest
from rpcudp.protocol import RPCProtocol as PyRPCProtocol

from rpcudp_rs import Ext
from rpcudp_rs.exceptions import MalformedMessage
from rpcudp_rs.protocol import RPCProtocol

# Every value type of u-msgpack's mapping, and what arrives (tuples arrive as lists).
VALUES = [
    None, True, False, 0, 1, -1, 127, 128, -33, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63),
    2**64 - 1, 1.5, -0.0, 1e308, "", "héllo ✓", "x" * 300, b"", b"\x00\xff" * 100,
    [], [1, "two", b"3", None], {"a": 1, "b": [True, {"c": b"d"}]}, {1: "int key"},
    [[[[1]]]],
]


def make_server(base):
    class Server(base):
        def rpc_echo(self, sender, *args):
            return list(args) if len(args) != 1 else args[0]

        def rpc_sender(self, sender):
            return list(sender)

        async def rpc_slow(self, sender, ms):
            await asyncio.sleep(ms / 1000)
            return ms

        def rpc_boom(self, sender):
            raise ValueError("handler failed")

        async def rpc_aboom(self, sender):
            raise ValueError("async handler failed")

        count = 0

        def rpc_count(self, sender):
            self.count += 1
            return self.count

    return Server


async def endpoint(factory, **kw):
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: factory(**kw), local_addr=("127.0.0.1", 0))
    return transport, proto, transport.get_extra_info("sockname")


@pytest.mark.parametrize("server_base,client_base", [
    (RPCProtocol, PyRPCProtocol), (PyRPCProtocol, RPCProtocol), (RPCProtocol, RPCProtocol)],
    ids=["rpcudp_calls_ours", "ours_calls_rpcudp", "ours_calls_ours"])
async def test_every_value_type_round_trips(server_base, client_base):
    st, _, saddr = await endpoint(make_server(server_base))
    ct, client, caddr = await endpoint(client_base)
    try:
        for v in VALUES:
            assert await client.echo(saddr, v) == (True, v), v
        assert await client.echo(saddr, (1, (2, 3))) == (True, [1, [2, 3]])
        assert await client.echo(saddr, 1, "a", b"b") == (True, [1, "a", b"b"])
        assert await client.sender(saddr) == (True, ["127.0.0.1", caddr[1]])
    finally:
        ct.close()
        st.close()


async def test_ext_values_cross_both_ways_with_rpcudp():
    import umsgpack
    st, _, saddr = await endpoint(make_server(RPCProtocol))
    ct, client, _ = await endpoint(PyRPCProtocol)
    ot, ours, _ = await endpoint(RPCProtocol)
    try:
        ok, got = await client.echo(saddr, umsgpack.Ext(5, b"xy"))
        assert ok and got == umsgpack.Ext(5, b"xy")
        assert await ours.echo(saddr, Ext(7, b"z")) == (True, Ext(7, b"z"))
    finally:
        for t in (st, ct, ot):
            t.close()


async def test_readme_example_with_only_the_import_changed():
    # rpcudp's README server and client, `from rpcudp.protocol` read `from rpcudp_rs.protocol`.
    class RPCServer(RPCProtocol):
        def rpc_sayhi(self, sender, name):
            return "Hello %s you live at %s:%i" % (name, sender[0], sender[1])

        async def rpc_sayhi_slowly(self, sender, name):
            await asyncio.sleep(0.01)
            return "Hello %s you live at %s:%i" % (name, sender[0], sender[1])

    loop = asyncio.get_event_loop()
    transport, protocol = await loop.create_datagram_endpoint(RPCServer, local_addr=("127.0.0.1", 0))
    address = transport.get_extra_info("sockname")
    printed = []

    async def sayhi(protocol, address):
        result = await protocol.sayhi(address, "Snake Plissken")
        printed.append(result[1] if result[0] else "No response received.")
        result = await protocol.sayhi_slowly(address, "Snake Plissken")
        printed.append(result[1] if result[0] else "No response received.")

    ctransport, cprotocol = await loop.create_datagram_endpoint(RPCProtocol, local_addr=("127.0.0.1", 0))
    port = ctransport.get_extra_info("sockname")[1]
    await sayhi(cprotocol, address)
    ctransport.close()
    transport.close()
    assert printed == [f"Hello Snake Plissken you live at 127.0.0.1:{port}"] * 2


@pytest.mark.parametrize("method", ["nosuch", "boom", "aboom"])
async def test_unknown_methods_and_raising_handlers_get_no_answer(method, caplog):
    st, _, saddr = await endpoint(make_server(RPCProtocol))
    ct, client, _ = await endpoint(PyRPCProtocol, wait_timeout=0.5)
    try:
        with caplog.at_level(logging.WARNING):
            started = time.monotonic()
            assert await getattr(client, method)(saddr) == (False, None)
            assert time.monotonic() - started >= 0.45
        assert any(r.name.startswith("rpcudp_rs") for r in caplog.records)
        # The server goes on serving.
        assert await client.echo(saddr, 1) == (True, 1)
    finally:
        ct.close()
        st.close()


async def test_timeout_gives_false_none_within_wait_timeout():
    silent = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    addr = silent[0].get_extra_info("sockname")
    ct, client, _ = await endpoint(RPCProtocol, wait_timeout=0.3)
    ct2, retrying, _ = await endpoint(RPCProtocol, wait_timeout=0.3, retries=2)
    try:
        for c in (client, retrying):
            started = time.monotonic()
            assert await c.anything(addr, 1) == (False, None)
            took = time.monotonic() - started
            assert 0.25 <= took <= 0.6, took
        assert retrying.stats()["retries"] == 2
        assert client.stats()["retries"] == 0
    finally:
        ct.close()
        ct2.close()
        silent[0].close()


async def test_async_handlers_run_concurrently():
    st, _, saddr = await endpoint(make_server(RPCProtocol))
    ct, client, _ = await endpoint(RPCProtocol)
    try:
        started = time.monotonic()
        results = await asyncio.gather(*(client.slow(saddr, 200) for _ in range(20)))
        assert results == [(True, 200)] * 20
        assert time.monotonic() - started < 1.5
    finally:
        ct.close()
        st.close()


async def test_a_resent_request_is_answered_from_the_cache_without_running_the_handler_again():
    st, server, saddr = await endpoint(make_server(RPCProtocol))
    loop = asyncio.get_running_loop()
    answers = []

    class Raw(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr):
            answers.append(data)

    rt, _ = await loop.create_datagram_endpoint(Raw, local_addr=("127.0.0.1", 0))
    try:
        import umsgpack
        request = b"\x00" + b"m" * 20 + umsgpack.packb(["count", []])
        for _ in range(3):
            rt.sendto(request, saddr)
            await asyncio.sleep(0.05)
        assert len(answers) == 3
        assert all(a == b"\x01" + b"m" * 20 + umsgpack.packb(1) for a in answers)
        assert server.count == 1
        assert server.stats()["duplicates_answered"] == 2
    finally:
        rt.close()
        st.close()


async def test_a_call_over_8k_raises_malformed_message_as_rpcudp():
    ct, client, _ = await endpoint(RPCProtocol)
    try:
        with pytest.raises(MalformedMessage):
            client.echo(("127.0.0.1", 9), b"x" * 9000)
        with pytest.raises(TypeError):
            client.echo(("127.0.0.1", 9), object())
    finally:
        ct.close()


async def test_a_host_name_in_the_address_is_resolved():
    st, _, saddr = await endpoint(make_server(RPCProtocol))
    ct, client, _ = await endpoint(RPCProtocol)
    try:
        assert await client.echo(("localhost", saddr[1]), "hi") == (True, "hi")
    finally:
        ct.close()
        st.close()


async def test_closing_the_transport_ends_pending_calls():
    silent = await asyncio.get_running_loop().create_datagram_endpoint(
        asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    ct, client, _ = await endpoint(RPCProtocol, wait_timeout=30)
    fut = client.anything(silent[0].get_extra_info("sockname"))
    ct.close()
    assert await asyncio.wait_for(fut, 2) == (False, None)
    silent[0].close()


async def test_an_unvalidated_address_gets_at_most_three_times_what_it_sent():
    class Big(RPCProtocol):
        def rpc_big(self, sender):
            return b"x" * 4000

    st, server, saddr = await endpoint(Big)
    ct, client, _ = await endpoint(PyRPCProtocol, wait_timeout=0.5)
    try:
        assert await client.big(saddr) == (False, None)
        assert server.stats()["answers_dropped_unvalidated"] >= 1
    finally:
        ct.close()
        st.close()
