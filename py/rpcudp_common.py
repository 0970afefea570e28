"""Shared by the interop helper scripts (rpcudp_*.py, storj_*.py): address parsing, the
reference service, and the call-file format the Rust interop tests exchange with them.

Call file: a MessagePack array of [method (str), args (array)].
Result file: a MessagePack array with one [ok (bool), value] per call, in order; ok is
False (value nil) when the peer reported no answer within its timeout.
"""

import sys


def parse_addr(text):
    """'127.0.0.1:9000' or '[::1]:9000' -> (host, port)."""
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def show_addr(host, port):
    """Formats like Rust's SocketAddr Display."""
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def announce(host, port):
    print("listening on " + show_addr(host, port), flush=True)


class ReferenceService:
    """The reference service of docs/cli.md (plus rpcudp's README `sayhi`), as
    `rpc_*` methods. Mixed into each peer's RPCProtocol; `sleep` is added per peer because
    asyncio and Twisted wait differently."""

    _count = 0

    def rpc_ping(self, sender):
        return "pong"

    def rpc_echo(self, sender, *args):
        return list(args)

    def rpc_add(self, sender, a, b):
        return a + b

    def rpc_count(self, sender):
        ReferenceService._count += 1
        return ReferenceService._count

    def rpc_stun(self, sender):
        return [sender[0], sender[1]]

    def rpc_sayhi(self, sender, name):
        return "Hello %s you live at %s:%i" % (name, sender[0], sender[1])


def die(msg):
    print("error: " + msg, file=sys.stderr, flush=True)
    sys.exit(2)


# This project's error reply (docs/wire.md, "Error replies"): an ordinary answer to a
# Python caller, a remote error to a Rust one.
ERROR_REPLY_KEY = "__rpcudp_error__"


class ErrorsAndShapes:
    """Methods for the error-reply and named-encoding interop tests, mixed into the
    servers beside ReferenceService."""

    def rpc_fail(self, sender, message):
        return {ERROR_REPLY_KEY: message}

    def rpc_raise(self, sender):
        raise ValueError("raised on purpose")

    def rpc_point(self, sender, x, y):
        return {"x": x, "y": y}

    def rpc_describe(self, sender, value):
        """What Python received: its type name and, for a dict, its sorted keys."""
        keys = sorted(value) if isinstance(value, dict) else None
        return [type(value).__name__, keys]
