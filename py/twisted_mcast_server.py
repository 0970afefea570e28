"""Twisted's multicast ping-pong server (the UDP guide's MulticastServer.py), in Python 3.

Joins GROUP with listenMultiple=True on PORT, prints `listening on 0.0.0.0:PORT` once the
group is joined, then `<sender IP:PORT> <payload>` per datagram, and answers
`Client: Ping` with `Server: Pong` by unicast to the sender.

Usage: python twisted_mcast_server.py GROUP PORT
"""
import sys

from twisted.internet import reactor
from twisted.internet.protocol import DatagramProtocol


def say(line):
    print(line, flush=True)


class MulticastPingPong(DatagramProtocol):
    def __init__(self, group):
        self.group = group

    def startProtocol(self):
        # Set the TTL>1 so multicast will cross router hops (as in the guide).
        self.transport.setTTL(5)
        d = self.transport.joinGroup(self.group)
        d.addCallback(self.joined)
        d.addErrback(self.failed)

    def joined(self, _):
        say("listening on 0.0.0.0:%d" % self.transport.getHost().port)

    def failed(self, failure):
        print("cannot join %s: %s" % (self.group, failure.getErrorMessage()), file=sys.stderr)
        reactor.stop()

    def datagramReceived(self, datagram, address):
        say("%s:%d %s" % (address[0], address[1], datagram.decode("utf-8", "replace")))
        if datagram == b"Client: Ping":
            # Rather than replying to the group multicast address, we send the
            # reply directly (unicast) to the originating port:
            self.transport.write(b"Server: Pong", address)


def main():
    group, port = sys.argv[1], int(sys.argv[2])
    # listenMultiple=True so that several listeners can share the port on one host.
    reactor.listenMulticast(port, MulticastPingPong(group), listenMultiple=True)
    reactor.run()


if __name__ == "__main__":
    main()
