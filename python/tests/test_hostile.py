"""The core's limits hold for rpcudp_rs.kademlia.Server as for `dht run`: the attacker
here is real (its own loopback address, a datagram of its own making), and the assertions
are on the bytes the node sends it."""

import asyncio
import os
import socket
import time

import umsgpack

from conftest import free_port
from rpcudp_rs.kademlia import Server, digest


def kad_request(method, *args):
    return b"\x00" + os.urandom(20) + umsgpack.packb([method, list(args)])


def received_within(sock, seconds):
    """Every datagram the socket gets within `seconds`: (count, bytes, payloads)."""
    sock.settimeout(0.05)
    got = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(65536))
        except socket.timeout:
            pass
    return got


async def test_a_50_byte_ping_from_a_new_silent_address_gets_at_most_three_times_its_bytes():
    # The node holds 51 values of 8 KiB, what a hand-over to a newcomer would send.
    victim, storer = Server(), Server()
    await victim.listen(free_port(), "127.0.1.1")
    await storer.listen(free_port(), "127.0.4.1")
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        vaddr = victim._dht.local_addr()
        await storer.bootstrap([vaddr])
        values = await asyncio.gather(*(storer.set(f"held-{n}", "x" * 8000) for n in range(51)))
        assert all(values)
        assert victim._dht.stored_count() == 51
        attacker.bind(("127.0.2.1", 0))
        ping = kad_request("ping", digest("newcomer"))
        assert len(ping) == 50
        attacker.sendto(ping, vaddr)
        got = await asyncio.get_running_loop().run_in_executor(None, received_within, attacker, 2.0)
        out = sum(len(g) for g in got)
        print(f"one ping from a new silent address: {len(ping)} B in, {out} B out")
        assert len(got) == 1 and got[0][:1] == b"\x01", "the ping is answered, and only that"
        assert umsgpack.unpackb(got[0][21:]) == victim.node.id
        assert out <= 3 * len(ping)
        # The node goes on serving an honest caller.
        assert await storer.get("held-7") == "x" * 8000
    finally:
        attacker.close()
        storer.stop()
        victim.stop()


async def test_find_value_from_a_forged_silent_address_gets_at_most_three_times_its_bytes():
    victim, storer = Server(), Server()
    await victim.listen(free_port(), "127.0.1.1")
    await storer.listen(free_port(), "127.0.4.1")
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        vaddr = victim._dht.local_addr()
        await storer.bootstrap([vaddr])
        assert await storer.set("the-8k-key", "y" * 8000)
        attacker.bind(("127.0.2.2", 0))
        request = kad_request("find_value", digest("attacker"), digest("the-8k-key"))
        attacker.sendto(request, vaddr)
        got = await asyncio.get_running_loop().run_in_executor(None, received_within, attacker, 1.5)
        out = sum(len(g) for g in got)
        print(f"find_value of an 8 KiB value from a silent address: {len(request)} B in, {out} B out")
        assert out <= 3 * len(request)
        # An address that answers (our storer, validated by the calls it answered) gets it.
        assert await storer.get("the-8k-key") == "y" * 8000
    finally:
        attacker.close()
        storer.stop()
        victim.stop()
