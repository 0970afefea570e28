"""A Python kademlia 2.2.3 node, or a one-shot set/get through one, for the DHT interop
tests.

Usage:
  python kademlia_node.py serve [--timeout SECS] [BOOTSTRAP_ADDR...]
      Listens on 127.0.0.1 (any free port), bootstraps through the given nodes, prints
      `listening on IP:PORT` then `node id <hex>`, then serves until killed.
  python kademlia_node.py set [--timeout SECS] ADDR KEY TYPE VALUE [KEY TYPE VALUE...]
      TYPE is str, int, float, bool or bin (VALUE in hex). Prints `stored True|False`
      per key.
  python kademlia_node.py get [--timeout SECS] ADDR KEY [KEY...]
      Prints `value <type> <repr>` (bytes as hex) or `value none` per key.

One process handles several keys because every short-lived node stays in the others'
routing tables after it is gone, and each later lookup that meets it waits a timeout.

--timeout sets the per-RPC wait of the rpcudp layer (kademlia's default is 5 s).
"""

import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpcudp_common import announce, parse_addr  # noqa: E402
from kademlia.network import Server  # noqa: E402

# RPCUDP_PY_IMPL=rs: the same script on rpcudp_rs.kademlia.Server (bench/python_compare.sh).
RS = os.environ.get("RPCUDP_PY_IMPL") == "rs"
if RS:
    from rpcudp_rs.kademlia import Server  # noqa: E402,F811
from kademlia.protocol import KademliaProtocol  # noqa: E402


def take_timeout(args):
    if len(args) >= 2 and args[0] == "--timeout":
        return float(args[1]), args[2:]
    return 5.0, args


async def start(timeout, bootstrap):
    if RS:
        server = Server(rpc_timeout=timeout)
        await server.listen(0, interface="127.0.0.1")
        if bootstrap:
            await server.bootstrap([parse_addr(a) for a in bootstrap])
        return server
    server = Server()

    def make_protocol():
        proto = KademliaProtocol(server.node, server.storage, server.ksize)
        proto._wait_timeout = timeout
        return proto

    server._create_protocol = make_protocol
    await server.listen(0, interface="127.0.0.1")
    if bootstrap:
        await server.bootstrap([parse_addr(a) for a in bootstrap])
    return server


def decode(kind, text):
    return {
        "str": lambda t: t,
        "int": int,
        "float": float,
        "bool": lambda t: t == "true",
        "bin": bytes.fromhex,
    }[kind](text)


async def main():
    mode, args = sys.argv[1], sys.argv[2:]
    timeout, args = take_timeout(args)
    if mode == "serve":
        server = await start(timeout, args)
        bound = server.transport.get_extra_info("sockname")
        announce(bound[0], bound[1])
        print("node id " + server.node.id.hex(), flush=True)
        await asyncio.Event().wait()
    elif mode == "set":
        addr, rest = args[0], args[1:]
        server = await start(timeout, [addr])
        for i in range(0, len(rest), 3):
            key, kind, text = rest[i : i + 3]
            started = time.monotonic()
            ok = await server.set(key, decode(kind, text))
            ms = (time.monotonic() - started) * 1000.0
            print("stored %s" % bool(ok), flush=True)
            # The time of the set itself, on stderr (bench/dht_compare.sh reads it).
            print("set_ms %.3f" % ms, file=sys.stderr, flush=True)
        server.stop()
    elif mode == "get":
        addr, keys = args[0], args[1:]
        server = await start(timeout, [addr])
        for key in keys:
            value = await server.get(key)
            if value is None:
                print("value none", flush=True)
            elif isinstance(value, bytes):
                print("value bin " + value.hex(), flush=True)
            else:
                print("value %s %r" % (type(value).__name__, value), flush=True)
        server.stop()
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
