"""``Server``: kademlia 2.2.3's ``kademlia.network.Server`` on the rpcudp-rs DHT node.

The node is the Rust ``rpcudp::kad::Dht`` (the one ``rpcudp dht run`` runs), on a tokio
runtime thread of its own per server; its answers come back to the asyncio loop that
asked through ``loop.call_soon_threadsafe``. Keys are hashed here exactly as kademlia
hashes them (``digest``), so a key set through one is found through the other, and
``save_state`` / ``load_state`` read and write kademlia's pickle.

Beyond kademlia: ``Server(..., state_dir=PATH)`` keeps the id, contacts and values in a
redb file as ``dht run --state`` does (an acknowledged store survives kill -9; a server
started on it with no bootstrap rejoins through ``rejoin()``); ``metrics()`` (Prometheus
text) and ``stats()``; the core's per-source limits, anti-amplification, adaptive RTO
and hand-over of values to newcomers.
"""

import asyncio
import atexit
import hashlib
import logging
import pickle
import random
import weakref

from rpcudp_rs._native import Dht

log = logging.getLogger(__name__)

_LIVE = weakref.WeakSet()


def digest(string):
    """kademlia's ``digest``: sha1 of the bytes, or of ``str(key)`` in UTF-8."""
    if not isinstance(string, bytes):
        string = str(string).encode("utf8")
    return hashlib.sha1(string).digest()


def check_dht_value_type(value):
    """Whether kademlia stores ``value`` (int, float, bool, str or bytes, exactly)."""
    return type(value) in (int, float, bool, str, bytes)


class Node:
    """A node's id, and where it answers (kademlia's ``Node``)."""

    def __init__(self, node_id, ip=None, port=None):
        self.id = node_id
        self.ip = ip
        self.port = port
        self.long_id = int(node_id.hex(), 16)

    def distance_to(self, node):
        return self.long_id ^ node.long_id

    def __iter__(self):
        return iter([self.id, self.ip, self.port])

    def __repr__(self):
        return repr([self.long_id, self.ip, self.port])

    def __str__(self):
        return f"{self.ip}:{self.port}"


def _resolve(future, ok, value):
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(RuntimeError(value))


class _Transport:
    """What ``server.transport`` offers of an asyncio transport: ``get_extra_info`` and
    ``close``."""

    def __init__(self, server):
        self._server = server

    def get_extra_info(self, name, default=None):
        if name == "sockname" and self._server._dht is not None:
            return self._server._dht.local_addr()
        return default

    def close(self):
        self._server.stop()


class Server:
    """A Kademlia node, as kademlia's ``Server``; see the module docs for what it adds.

    ``storage`` is accepted for compatibility and not used: values live in the Rust
    node (in memory, or in ``state_dir``). Keyword-only extras: ``state_dir``,
    ``rpc_timeout`` (5 s), ``verify_callers`` (True, as ``dht run``: a node that only
    called this one is pinged before it enters the routing table and is handed values,
    so a forged or silent caller gets nothing but its answer; False is kademlia's
    insert-at-once), ``strict_local`` (``dht run --strict-local``).
    """

    def __init__(self, ksize=20, alpha=3, node_id=None, storage=None, *, state_dir=None,
                 rpc_timeout=5.0, verify_callers=True, strict_local=False):
        self.ksize = ksize
        self.alpha = alpha
        self.storage = storage
        if storage is not None:
            log.warning("rpcudp_rs.kademlia.Server keeps values in the Rust node; storage= is not used")
        self._given_id = node_id
        self.node = Node(node_id or digest(random.getrandbits(255)))
        self.state_dir = state_dir
        self.rpc_timeout = rpc_timeout
        self.verify_callers = verify_callers
        self.strict_local = strict_local
        self.transport = None
        self.protocol = None
        self.refresh_loop = None
        self.save_state_loop = None
        self._dht = None

    def stop(self):
        """Stops the node: its socket closed, its thread joined, its state file closed."""
        if self._dht is not None:
            self._dht.stop()
            _LIVE.discard(self)
        if self.refresh_loop:
            self.refresh_loop.cancel()
        if self.save_state_loop:
            self.save_state_loop.cancel()

    async def listen(self, port, interface="0.0.0.0"):
        """Start listening on the given port (``interface="::"`` for IPv6)."""
        node_id = self._given_id if self._given_id is not None else (None if self.state_dir else self.node.id)
        self._dht = Dht(interface, port, _resolve, self.ksize, self.alpha, node_id,
                        None if self.state_dir is None else str(self.state_dir), float(self.rpc_timeout),
                        None, self.verify_callers, self.strict_local)
        _LIVE.add(self)
        self.node = Node(self._dht.id())
        self.protocol = self._dht
        self.transport = _Transport(self)
        log.info("Node %i listening on %s:%i", self.node.long_id, interface, port)
        self.refresh_table()

    def refresh_table(self, interval=3600):
        """kademlia schedules its own refresh here; the Rust node refreshes stale buckets
        and republishes by itself, so this only keeps the call valid."""
        log.debug("Refreshing routing table (done by the node itself)")

    def _call(self, method, *args):
        if self._dht is None:
            raise RuntimeError("the server is not listening: await listen() first")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        getattr(self._dht, method)(*args, loop, future)
        return future

    def bootstrappable_neighbors(self):
        """``(ip, port)`` of the contacts nearest this node, for a later ``bootstrap``."""
        return [(ip, port) for _, ip, port in self._nearest_contacts()]

    def _nearest_contacts(self):
        if self._dht is None:
            return []
        own = self.node.long_id
        contacts = sorted(self._dht.contacts(), key=lambda c: int(c[0].hex(), 16) ^ own)
        return contacts[: self.ksize]

    async def bootstrap(self, addrs):
        """Bootstrap the server through ``[(ip, port), ...]``; returns the nodes it knows."""
        log.debug("Attempting to bootstrap node with %i initial contacts", len(addrs))
        await self._call("bootstrap", [tuple(a)[:2] for a in addrs])
        return [Node(i, ip, port) for i, ip, port in self._nearest_contacts()]

    async def rejoin(self):
        """Joins again through the contacts saved in ``state_dir``; returns how many answered."""
        return await self._call("rejoin")

    async def get(self, key):
        """The value under ``key`` if the network has it, else None."""
        log.info("Looking up key %s", key)
        return await self.get_digest(digest(key))

    async def get_digest(self, dkey):
        """The value under the 20-byte ``dkey`` if the network has it, else None."""
        try:
            return await self._call("get_digest", dkey)
        except RuntimeError as e:
            log.warning("get of %s failed: %s", dkey.hex(), e)
            return None

    async def set(self, key, value):
        """Set the given string key to the given value in the network."""
        if not check_dht_value_type(value):
            raise TypeError("Value must be of type int, float, bool, str, or bytes")
        log.info("setting '%s' = '%s' on network", key, value)
        return await self.set_digest(digest(key), value)

    async def set_digest(self, dkey, value):
        """Set the given SHA1 digest key (bytes) to the given value in the network; True
        if any node stored it."""
        if not check_dht_value_type(value):
            raise TypeError("Value must be of type int, float, bool, str, or bytes")
        try:
            stored = await self._call("set_digest", dkey, value)
        except RuntimeError as e:
            log.warning("set of %s failed: %s", dkey.hex(), e)
            return False
        return stored > 0

    async def put_signed(self, secret_key, value, salt=b""):
        """Signs ``value`` (int, float, bool, str or bytes) with the 32-byte Ed25519
        secret seed under ``salt``, with the next seq above the one the network holds, and
        stores it as ``rpcudp dht put`` does; True if any node stored it."""
        try:
            return await self._call("put_signed", bytes(secret_key), value, bytes(salt)) > 0
        except RuntimeError as e:
            log.warning("put_signed failed: %s", e)
            return False

    async def get_signed(self, public_key, salt=b""):
        """The value of the record signed by the 32-byte ``public_key`` under ``salt`` with
        the highest seq found, verified (forgeries are skipped), or None; reads what
        ``rpcudp dht put`` makes, as ``dht get --signed`` does."""
        try:
            return await self._call("get_signed", bytes(public_key), bytes(salt))
        except RuntimeError as e:
            log.warning("get_signed failed: %s", e)
            return None

    async def put_immutable(self, value):
        """Stores ``value`` as a record named by its hash; returns that 20-byte target
        (for ``get_immutable``), or None if no node stored it."""
        try:
            return await self._call("put_immutable", value)
        except RuntimeError as e:
            log.warning("put_immutable failed: %s", e)
            return None

    async def get_immutable(self, target):
        """The value of the immutable record under the 20-byte ``target``, verified, or None."""
        try:
            return await self._call("get_immutable", bytes(target))
        except RuntimeError as e:
            log.warning("get_immutable failed: %s", e)
            return None

    @staticmethod
    def public_key(secret_key):
        """The 32-byte Ed25519 public key of a 32-byte secret seed."""
        return Dht.public_key(bytes(secret_key))

    def metrics(self):
        """The node's metrics, in the Prometheus text format."""
        return self._dht.metrics() if self._dht is not None else ""

    def save_state(self, fname):
        """Save the state of this node (the alpha/ksize/id/immediate neighbors) to a
        cache file with the given fname, in kademlia's format."""
        log.info("Saving state to %s", fname)
        data = {
            "ksize": self.ksize,
            "alpha": self.alpha,
            "id": self.node.id,
            "neighbors": self.bootstrappable_neighbors(),
        }
        if not data["neighbors"]:
            log.warning("No known neighbors, so not writing to cache.")
            return
        with open(fname, "wb") as file:
            pickle.dump(data, file)

    @classmethod
    async def load_state(cls, fname, port, interface="0.0.0.0"):
        """Load the state of this node from a cache file with the given fname, listen
        and bootstrap (as kademlia's ``load_state``; reads files kademlia wrote)."""
        log.info("Loading state from %s", fname)
        with open(fname, "rb") as file:
            data = pickle.load(file)
        svr = cls(data["ksize"], data["alpha"], data["id"])
        await svr.listen(port, interface)
        if data["neighbors"]:
            await svr.bootstrap(data["neighbors"])
        return svr

    def save_state_regularly(self, fname, frequency=600):
        """Save the state of node with a given regularity to the given filename."""
        self.save_state(fname)
        loop = asyncio.get_event_loop()
        self.save_state_loop = loop.call_later(frequency, self.save_state_regularly, fname, frequency)


@atexit.register
def _stop_all():
    """Interpreter exit stops every server still running: no thread outlives it."""
    for server in list(_LIVE):
        try:
            server.stop()
        except Exception:  # pragma: no cover - exit must go on
            pass
