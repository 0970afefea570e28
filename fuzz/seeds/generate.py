#!/usr/bin/env python3
"""Writes the hand-made seeds of the byte-input fuzz targets (valid inputs of each kind).

    python3 fuzz/seeds/generate.py

The structured targets (lt_stream, rpc_endpoint, kad_node) take `arbitrary`-encoded
input, which is not written by hand: their seeds are inputs the fuzzer found, minimized
with `cargo fuzz cmin` (see fuzz/README.md).
"""
import hashlib
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def pack(v):
    """Smallest-width MessagePack, as u-msgpack-python writes it (enough for the seeds)."""
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if 0 <= v < 2**8:
            return b"\xcc" + struct.pack(">B", v)
        if 0 <= v < 2**16:
            return b"\xcd" + struct.pack(">H", v)
        if 0 <= v < 2**32:
            return b"\xce" + struct.pack(">I", v)
        if 0 <= v < 2**64:
            return b"\xcf" + struct.pack(">Q", v)
        if -(2**7) <= v:
            return b"\xd0" + struct.pack(">b", v)
        if -(2**15) <= v:
            return b"\xd1" + struct.pack(">h", v)
        if -(2**31) <= v:
            return b"\xd2" + struct.pack(">i", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        if len(b) < 256:
            return b"\xd9" + bytes([len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, bytes):
        if len(v) < 256:
            return b"\xc4" + bytes([len(v)]) + v
        return b"\xc5" + struct.pack(">H", len(v)) + v
    if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], Ext):
        data = v[1]
        return b"\xc7" + bytes([len(data)]) + struct.pack("b", v[0].t) + data
    if isinstance(v, list):
        n = len(v)
        head = bytes([0x90 | n]) if n < 16 else b"\xdc" + struct.pack(">H", n)
        return head + b"".join(pack(x) for x in v)
    if isinstance(v, dict):
        n = len(v)
        head = bytes([0x80 | n]) if n < 16 else b"\xde" + struct.pack(">H", n)
        return head + b"".join(pack(k) + pack(x) for k, x in v.items())
    raise TypeError(v)


class Ext:
    def __init__(self, t):
        self.t = t


def write(target, data):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


NODE_ID = bytes(range(20))
KEY = hashlib.sha1(b"key").digest()
CONTACT = [bytes([7] * 20), "127.0.0.1", 8468]
CONTACT6 = [bytes([8] * 20), "::1", 8469]
MSG_ID = bytes([0x5A] * 20)

VALUES = [
    None, True, False, 0, 1, 127, 128, 255, 256, 65535, 65536, 2**32, 2**64 - 1,
    -1, -32, -33, -128, -129, -(2**31), -(2**63), 1.5, float("inf"), float("nan"),
    "", "hi", "é" * 20, "x" * 40, "y" * 300, b"", b"\x00\x01", bytes(300), [], [1, [2, [3]]],
    {}, {"value": "v"}, {"a": 1, "b": [True, None]}, (Ext(-1), b"\x00" * 4),
    (Ext(5), b"abc"), [[[[[[[[1]]]]]]]], list(range(20)), {str(i): i for i in range(20)},
]

REQUESTS = [
    ("ping", [NODE_ID]),
    ("store", [NODE_ID, KEY, "value"]),
    ("store", [NODE_ID, KEY, 42]),
    ("find_node", [NODE_ID, KEY]),
    ("find_value", [NODE_ID, KEY]),
    ("stun", []),
    ("sayhi", ["Alice"]),
    ("echo", [1, "two", b"\x03", [4.0], {"five": None}]),
    ("add", [2, 3]),
    ("sleep", [10]),
]

RESPONSES = [
    NODE_ID,
    True,
    [CONTACT, CONTACT6],
    {"value": "value"},
    ["127.0.0.1", 4000],
    "pong",
    None,
    [1, "two"],
]


def main():
    for v in VALUES:
        write("msgpack_value", bytes([64]) + pack(v))
    write("msgpack_value", bytes([64]) + b"\xc1")  # reserved marker
    write("msgpack_value", bytes([64]) + b"\xdd\xff\xff\xff\xff")  # forged length
    write("msgpack_value", bytes([64]) + b"\xa2\xff\xfe")  # str, not UTF-8
    write("msgpack_value", bytes([1]) + pack([[1]]))  # too deep for the limit
    for dialect, (req, resp) in (("rpcudp", (0, 1)), ("storj", (2, 3))):
        for method, args in REQUESTS:
            write("rpc_datagram", bytes([64, req]) + MSG_ID + pack([method, args]))
        for v in RESPONSES:
            write("rpc_datagram", bytes([64, resp]) + MSG_ID + pack(v))
        write("rpc_datagram", bytes([64, resp]) + MSG_ID + pack("pong") + b"trailing")
    write("rpc_datagram", bytes([64, 0]) + MSG_ID)  # too short
    write("rpc_datagram", bytes([64, 0]) + MSG_ID + pack(["ping", "notalist"]))
    addr4 = bytes([0, 127, 0, 0, 1]) + bytes(11) + struct.pack(">H", 8468)
    addr6 = bytes([1]) + bytes(14) + b"\x01" + struct.pack(">H", 8468)
    for v in [CONTACT, CONTACT6, [CONTACT, CONTACT6, None, CONTACT], {"value": 5}, NODE_ID,
              [bytes(19), "127.0.0.1", 1], [bytes(20), "nohost", 1], [bytes(20), "::1", 0],
              {"value": "a", "x": 1}, {}, []]:
        for addr in (addr4, addr6):
            write("kad_shapes", bytes([20]) + addr + pack(v))


if __name__ == "__main__":
    main()
