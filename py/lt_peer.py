"""A Python 3 length-type peer that frames exactly like ltprotocol 0.2.1, on Twisted.

ltprotocol itself is Python 2 only, so this is a faithful port of its moving parts:
LTMessage subclasses with get_type / pack / unpack, an LTProtocol holding the message
types and the struct codes of the length and type fields ('H' and 'B' by default,
big-endian, the length counting the header), and a Twisted Protocol whose dataReceived
buffers bytes and cuts frames out of them. The messages are those of ltprotocol's own
example (test_ltprotocol.py): NumMsg (type 1, '>I') and StrMsg (type 2, the raw bytes).

Usage (used by crates/rpcudp/tests/lt_interop.rs):
  lt_peer.py client PORT    connect to 127.0.0.1:PORT, send NumMsg(200), StrMsg("hello
                            world!"), NumMsg(7) and a frame of unknown type 9, print every
                            message received as a line, exit after 4 or a timeout.
  lt_peer.py server         listen on 127.0.0.1, print "listening on 127.0.0.1:PORT"; on a
                            connection send NumMsg(200), StrMsg("hello world!"), NumMsg(7);
                            print every message received; exit when StrMsg("bye") arrives.
Every printed line is flushed at once; the process stops by itself after 20 s.
"""

import struct
import sys

from twisted.internet import protocol, reactor


class LTMessage(object):
    @staticmethod
    def get_type():
        raise NotImplementedError

    def pack(self):
        raise NotImplementedError


class NumMsg(LTMessage):
    @staticmethod
    def get_type():
        return 1

    def __init__(self, n):
        self.num = n

    def pack(self):
        return struct.pack("> I", self.num)

    @staticmethod
    def unpack(body):
        return NumMsg(struct.unpack("> I", body)[0])

    def __str__(self):
        return "num %d" % self.num


class StrMsg(LTMessage):
    @staticmethod
    def get_type():
        return 2

    def __init__(self, s):
        self.str = s

    def pack(self):
        return struct.pack("> %us" % len(self.str), self.str)

    @staticmethod
    def unpack(body):
        return StrMsg(struct.unpack("> %us" % len(body), body)[0])

    def __str__(self):
        return "str %s" % self.str.decode("utf-8", "replace")


class RawMsg(LTMessage):
    """A frame of a type the protocol does not declare (to test the peer's 'unknown')."""

    def __init__(self, t, body):
        self.t = t
        self.body = body

    def get_type(self):
        return self.t

    def pack(self):
        return self.body


class LTProtocol(object):
    def __init__(self, msg_types, len_type="H", type_type="B"):
        self.msg_types = dict((m.get_type(), m) for m in msg_types)
        self.len_type = len_type
        self.type_type = type_type
        self.header_fmt = "> " + len_type + type_type
        self.header_len = struct.calcsize(self.header_fmt)

    def pack_with_header(self, msg):
        body = msg.pack()
        return struct.pack(self.header_fmt, self.header_len + len(body), msg.get_type()) + body

    def unpack_received_msg(self, type_val, body):
        if type_val in self.msg_types:
            return self.msg_types[type_val].unpack(body)
        return None


TEST_PROTOCOL = LTProtocol([NumMsg, StrMsg], "H", "B")


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class LTTwistedProtocol(protocol.Protocol):
    """ltprotocol's receive loop: buffer, and while a whole frame is in, cut it out."""

    def __init__(self, lt, on_msg, on_connect=None):
        self.lt = lt
        self.on_msg = on_msg
        self.on_connect = on_connect
        self.packet = b""

    def connectionMade(self):
        if self.on_connect:
            self.on_connect(self)

    def send(self, msg):
        self.transport.write(self.lt.pack_with_header(msg))

    def dataReceived(self, data):
        self.packet += data
        hl = self.lt.header_len
        while len(self.packet) >= hl:
            length, type_val = struct.unpack(self.lt.header_fmt, self.packet[:hl])
            if len(self.packet) < length:
                break
            body = self.packet[hl:length]
            self.packet = self.packet[length:]
            msg = self.lt.unpack_received_msg(type_val, body)
            self.on_msg(self, type_val, msg, body)


def run_client(port):
    got = []

    def on_msg(proto, type_val, msg, body):
        if msg is None:
            say("unknown %d %s" % (type_val, body.hex()))
        else:
            say(str(msg))
        got.append(msg)
        if len(got) == 4:
            say("done")
            proto.transport.loseConnection()
            reactor.callLater(0.05, reactor.stop)

    def on_connect(proto):
        proto.send(NumMsg(200))
        proto.send(StrMsg(b"hello world!"))
        proto.send(NumMsg(7))
        proto.send(RawMsg(9, b"\x01\x02\x03"))

    class Factory(protocol.ClientFactory):
        def buildProtocol(self, addr):
            return LTTwistedProtocol(TEST_PROTOCOL, on_msg, on_connect)

        def clientConnectionFailed(self, connector, reason):
            say("connection failed: %s" % reason.getErrorMessage())
            reactor.stop()

    reactor.connectTCP("127.0.0.1", port, Factory())


def run_server():
    def on_msg(proto, type_val, msg, body):
        if msg is None:
            say("unknown %d %s" % (type_val, body.hex()))
            return
        say(str(msg))
        if isinstance(msg, StrMsg) and msg.str == b"bye":
            proto.transport.loseConnection()
            reactor.callLater(0.05, reactor.stop)

    def on_connect(proto):
        say("connected")
        proto.send(NumMsg(200))
        proto.send(StrMsg(b"hello world!"))
        proto.send(NumMsg(7))

    class Factory(protocol.ServerFactory):
        def buildProtocol(self, addr):
            return LTTwistedProtocol(TEST_PROTOCOL, on_msg, on_connect)

    port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
    say("listening on 127.0.0.1:%d" % port.getHost().port)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "client":
        run_client(int(sys.argv[2]))
    elif mode == "server":
        run_server()
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
    reactor.callLater(20, reactor.stop)
    reactor.run()


if __name__ == "__main__":
    main()
