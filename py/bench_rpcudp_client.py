"""Load client for the Python rpcudp 5.0.1 peer: the Python side of bench/compare.sh.

Usage: python bench_rpcudp_client.py HOST:PORT [--method M] [--args JSON]
           [--concurrency N] [--duration SECS] [--timeout SECS]

Keeps N calls in flight (N coroutines, each calling again as soon as its answer came)
on one rpcudp RPCProtocol (asyncio), for the duration, then prints ONE JSON line with
the same keys as `rpcudp bench --json`: calls, calls_per_sec, p50_us, p90_us, p99_us,
max_us, mean_us, timeouts. --args is plain JSON (no `$` extensions).
"""

import argparse
import asyncio
import json
import logging
import os
import sys
import time

from rpcudp.protocol import RPCProtocol

if os.environ.get("RPCUDP_PY_IMPL") == "rs":  # bench/python_compare.sh: rpcudp_rs instead
    from rpcudp_rs.protocol import RPCProtocol  # noqa: E402,F811


def parse_addr(text):
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def quantile(sorted_values, q):
    if not sorted_values:
        return 0.0
    i = min(len(sorted_values) - 1, max(0, int(round(q * len(sorted_values))) - 1))
    return sorted_values[i]


async def main(opts):
    host, port = parse_addr(opts.addr)
    loop = asyncio.get_running_loop()
    transport, proto = await loop.create_datagram_endpoint(
        lambda: RPCProtocol(wait_timeout=opts.timeout),
        local_addr=("::" if ":" in host else "0.0.0.0", 0),
    )
    call = getattr(proto, opts.method)
    args = json.loads(opts.args)
    if not isinstance(args, list):
        sys.exit("error: --args must be a JSON array")
    latencies = []
    timeouts = 0
    started = time.perf_counter()
    end = started + opts.duration

    async def worker():
        nonlocal timeouts
        clock = time.perf_counter
        record = latencies.append
        while clock() < end:
            t0 = clock()
            ok, _ = await call((host, port), *args)
            if ok:
                record(clock() - t0)
            else:
                timeouts += 1

    await asyncio.gather(*(worker() for _ in range(opts.concurrency)))
    elapsed = time.perf_counter() - started
    transport.close()
    latencies.sort()
    us = 1e6
    print(
        json.dumps(
            {
                "mode": "python-rpcudp",
                "label": opts.method,
                "concurrency": opts.concurrency,
                "elapsed_s": elapsed,
                "calls": len(latencies),
                "calls_per_sec": len(latencies) / elapsed,
                "p50_us": quantile(latencies, 0.50) * us,
                "p90_us": quantile(latencies, 0.90) * us,
                "p99_us": quantile(latencies, 0.99) * us,
                "max_us": (latencies[-1] if latencies else 0.0) * us,
                "mean_us": (sum(latencies) / len(latencies) if latencies else 0.0) * us,
                "timeouts": timeouts,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("addr")
    p.add_argument("--method", default="ping")
    p.add_argument("--args", default="[]")
    p.add_argument("--concurrency", "-c", type=int, default=64)
    p.add_argument("--duration", "-d", type=float, default=10.0)
    p.add_argument("--timeout", type=float, default=5.0)
    opts = p.parse_args()
    # rpcudp logs every timeout at ERROR through the root logger's last-resort handler;
    # a bench counts them instead of printing each.
    logging.getLogger("rpcudp").setLevel(logging.CRITICAL)
    asyncio.run(main(opts))
