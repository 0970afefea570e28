"""A Python rpcudp 5.0.1 (asyncio) server with the reference service, for interop tests.

Usage: python rpcudp_server.py [HOST:PORT]   (default 127.0.0.1:0)
Prints `listening on IP:PORT` once bound, then serves until killed.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpcudp_common import ErrorsAndShapes, ReferenceService, announce, parse_addr  # noqa: E402
from rpcudp.protocol import RPCProtocol  # noqa: E402

if os.environ.get("RPCUDP_PY_IMPL") == "rs":  # bench/python_compare.sh: rpcudp_rs instead
    from rpcudp_rs.protocol import RPCProtocol  # noqa: E402,F811


class Server(ReferenceService, ErrorsAndShapes, RPCProtocol):
    async def rpc_sleep(self, sender, ms):
        await asyncio.sleep(ms / 1000.0)
        return ms


async def main():
    host, port = parse_addr(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:0")
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(Server, local_addr=(host, port))
    bound = transport.get_extra_info("sockname")
    announce(bound[0], bound[1])
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
