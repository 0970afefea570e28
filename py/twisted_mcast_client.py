"""Twisted's multicast ping client (the UDP guide's MulticastClient.py), in Python 3.

Sends `Client: Ping` to GROUP:PORT and prints `pong from IP:PORT` per reply until
TIMEOUT seconds pass; exits 0 if anyone answered, 3 if nobody did.

Unlike the guide's client it listens on an ephemeral port rather than on PORT itself:
with listenMultiple, several sockets on this host share PORT, and the kernel would hand
each unicast reply to just one of them, maybe a listener rather than us.

Usage: python twisted_mcast_client.py GROUP PORT [TIMEOUT]
"""
import sys

from twisted.internet import reactor
from twisted.internet.protocol import DatagramProtocol

replies = []


class MulticastPingClient(DatagramProtocol):
    def __init__(self, group, port):
        self.group, self.port = group, port

    def startProtocol(self):
        self.transport.write(b"Client: Ping", (self.group, self.port))

    def datagramReceived(self, datagram, address):
        replies.append(address)
        print("pong from %s:%d" % address, flush=True)


def main():
    group, port = sys.argv[1], int(sys.argv[2])
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
    reactor.listenMulticast(0, MulticastPingClient(group, port), listenMultiple=True)
    reactor.callLater(timeout, reactor.stop)
    reactor.run()
    sys.exit(0 if replies else 3)


if __name__ == "__main__":
    main()
