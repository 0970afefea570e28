"""A Python rpcudp 5.0.1 (asyncio) client, for interop tests.

Usage:
  python rpcudp_client.py ADDR calls CALLS_FILE RESULTS_FILE [TIMEOUT_SECS]
      makes each call of CALLS_FILE in order (format: rpcudp_common) and writes the
      results to RESULTS_FILE.
  python rpcudp_client.py ADDR load CALLS CONCURRENCY [TIMEOUT_SECS]
      calls ping CALLS times keeping CONCURRENCY calls in flight, then prints
      `calls N answered K secs S per_sec R`.
"""

import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rpcudp_common import die, parse_addr  # noqa: E402
from rpcudp.protocol import RPCProtocol  # noqa: E402
import umsgpack  # noqa: E402


async def main(argv):
    if len(argv) < 5:
        die(__doc__)
    host, port = parse_addr(argv[1])
    mode = argv[2]
    timeout = float(argv[5]) if len(argv) > 5 else 2.0
    loop = asyncio.get_running_loop()
    local = "::1" if ":" in host else "127.0.0.1"
    transport, proto = await loop.create_datagram_endpoint(
        lambda: RPCProtocol(wait_timeout=timeout), local_addr=(local, 0))
    try:
        if mode == "calls":
            with open(argv[3], "rb") as f:
                calls = umsgpack.unpackb(f.read())
            results = []
            for method, args in calls:
                ok, value = await getattr(proto, method)((host, port), *args)
                results.append([ok, value])
            with open(argv[4], "wb") as f:
                f.write(umsgpack.packb(results))
        elif mode == "load":
            total, concurrency = int(argv[3]), int(argv[4])
            answered = 0
            next_call = 0

            async def worker():
                nonlocal answered, next_call
                while next_call < total:
                    next_call += 1
                    ok, _ = await proto.ping((host, port))
                    answered += ok

            start = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            secs = time.monotonic() - start
            print("calls %d answered %d secs %.3f per_sec %.0f"
                  % (total, answered, secs, total / secs), flush=True)
        else:
            die("unknown mode " + mode)
    finally:
        transport.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv))
