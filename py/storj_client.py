"""A Python storjrpcudp 2.5 (Twisted) client, for interop tests.

Run with PYTHONPATH set to where storjrpcudp is installed (testkit::storj_path()).
Usage: the same as rpcudp_client.py:
  python storj_client.py ADDR calls CALLS_FILE RESULTS_FILE [TIMEOUT_SECS]
  python storj_client.py ADDR load CALLS CONCURRENCY [TIMEOUT_SECS]
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpcudp_common import die, parse_addr  # noqa: E402
from storjrpcudp.protocol import RPCProtocol  # noqa: E402
from twisted.internet import defer, reactor  # noqa: E402
import umsgpack  # noqa: E402

exit_code = [0]


@defer.inlineCallbacks
def run(argv, proto):
    host, port = parse_addr(argv[1])
    mode = argv[2]
    try:
        if mode == "calls":
            with open(argv[3], "rb") as f:
                calls = umsgpack.unpackb(f.read())
            results = []
            for method, args in calls:
                ok, value = yield getattr(proto, method)((host, port), *args)
                results.append([ok, value])
            with open(argv[4], "wb") as f:
                f.write(umsgpack.packb(results))
        elif mode == "load":
            total, concurrency = int(argv[3]), int(argv[4])
            state = {"next": 0, "answered": 0}

            @defer.inlineCallbacks
            def worker():
                while state["next"] < total:
                    state["next"] += 1
                    ok, _ = yield proto.ping((host, port))
                    state["answered"] += ok

            start = time.monotonic()
            yield defer.gatherResults([worker() for _ in range(concurrency)])
            secs = time.monotonic() - start
            print("calls %d answered %d secs %.3f per_sec %.0f"
                  % (total, state["answered"], secs, total / secs), flush=True)
        else:
            die("unknown mode " + mode)
    except Exception as e:  # report, then stop the reactor with a failure code
        print("error: %r" % (e,), file=sys.stderr, flush=True)
        exit_code[0] = 1
    finally:
        reactor.stop()


def main(argv):
    if len(argv) < 5:
        die(__doc__)
    host, _ = parse_addr(argv[1])
    timeout = float(argv[5]) if len(argv) > 5 else 2.0
    proto = RPCProtocol(waitTimeout=timeout)
    reactor.listenUDP(0, proto, interface="::1" if ":" in host else "127.0.0.1")
    reactor.callWhenRunning(run, argv, proto)
    reactor.run()
    sys.exit(exit_code[0])


if __name__ == "__main__":
    main(sys.argv)
