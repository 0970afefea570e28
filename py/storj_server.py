"""A Python storjrpcudp 2.5 (Twisted) server with the reference service, for interop tests.

Run with PYTHONPATH set to where storjrpcudp is installed (testkit::storj_path()).
storjrpcudp 2.5 (2016) runs unmodified on Python 3.11 with Twisted 26: its
`object.__getattr__(self, name)` calls (a Python 2 idiom) raise AttributeError on
Python 3, which its own `__getattr__` catches, so remote calls still resolve; it needs
the `future` package for `from builtins import str`, which pip installs with it.
Usage: python storj_server.py [HOST:PORT]   (default 127.0.0.1:0)
Prints `listening on IP:PORT` once bound, then serves until killed.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpcudp_common import ErrorsAndShapes, ReferenceService, announce, parse_addr  # noqa: E402
from storjrpcudp.protocol import RPCProtocol  # noqa: E402
from twisted.internet import reactor, task  # noqa: E402


class Server(ReferenceService, ErrorsAndShapes, RPCProtocol):
    def rpc_sleep(self, sender, ms):
        return task.deferLater(reactor, ms / 1000.0, lambda: ms)


def main():
    host, port = parse_addr(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:0")
    listening = reactor.listenUDP(port, Server(), interface=host)
    bound = listening.getHost()
    announce(bound.host, bound.port)
    reactor.run()


if __name__ == "__main__":
    main()
