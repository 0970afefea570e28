"""A Python kademlia 2.2.3 client for bench/dht_compare.sh: joins through one node (as
`Server.bootstrap` does), then gets each key in turn and prints, per key,
`get <key> <milliseconds> found|missing`, timing only the `get` itself.

Usage: python kademlia_timed_client.py ADDR KEY [KEY...]
Default settings (kademlia's 5 s RPC timeout, k = 20, alpha = 3).
"""

import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpcudp_common import parse_addr  # noqa: E402
from kademlia.network import Server  # noqa: E402

if os.environ.get("RPCUDP_PY_IMPL") == "rs":  # bench/python_compare.sh
    from rpcudp_rs.kademlia import Server  # noqa: E402,F811


async def main():
    addr, keys = sys.argv[1], sys.argv[2:]
    server = Server()
    await server.listen(0, interface="127.0.0.1")
    await server.bootstrap([parse_addr(addr)])
    for key in keys:
        started = time.monotonic()
        value = await server.get(key)
        ms = (time.monotonic() - started) * 1000.0
        print("get %s %.3f %s" % (key, ms, "missing" if value is None else "found"), flush=True)
    server.stop()


if __name__ == "__main__":
    asyncio.run(main())
