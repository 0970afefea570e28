"""``RPCProtocol``: rpcudp 5.0.1's ``RPCProtocol`` on the rpcudp-rs core.

An ``asyncio.DatagramProtocol``: every datagram goes into the sans-IO RPC endpoint of
rpcudp-proto (``rpcudp_rs._native.Endpoint``), which decides what is a request, a
duplicate (answered again from its cache, the handler not run twice), an answer, what
to send and when its next timer is (``loop.call_at``). This module runs the handlers,
``rpc_NAME(self, sender, *args)`` plain or ``async def``, and turns attribute access
into remote calls, as rpcudp does.

Beyond rpcudp: ``retries=`` (resends of the same datagram, same message id, within
``wait_timeout``), ``dialect="storj"`` (storjrpcudp 2.5's wire), and the core's
duplicate cache, per-source limits and 3x anti-amplification, on by default.
"""

import asyncio
import inspect
import logging
import os
import socket

from rpcudp_rs._native import Endpoint
from rpcudp_rs.exceptions import MalformedMessage

LOG = logging.getLogger(__name__)

_iscoroutinefunction = inspect.iscoroutinefunction


class RPCProtocol(asyncio.DatagramProtocol):
    """Protocol implementation using msgpack to encode messages and asyncio to handle
    async sending / receiving, on the rpcudp-rs core.

    ``RPCProtocol(wait_timeout=5)`` as in rpcudp; keyword-only extras:

    - ``retries`` (0): resends of an unanswered call's datagram (same message id); the
      call still ends with ``(False, None)`` within ``wait_timeout`` seconds, split into
      ``retries + 1`` equal waits;
    - ``dialect`` ("rpcudp"): "storj" speaks storjrpcudp 2.5's wire;
    - ``amplification_factor`` (3), ``max_concurrent_requests`` (1024),
      ``max_requests_per_source`` (64), ``dedup_capacity`` (65536), ``strict_local``
      (False): the core's limits (see SECURITY.md).
    """

    def __init__(self, wait_timeout=5, *, retries=0, dialect="rpcudp", **limits):
        self._wait_timeout = wait_timeout
        self._native = Endpoint(float(wait_timeout), retries, dialect, **limits)
        self._coroutine_methods = {}
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        loop = asyncio.get_event_loop()
        self._native.attach(transport.sendto, loop.call_at, loop.time(), self._native.timeout,
                            _dup_socket(transport))

    def connection_lost(self, exc):
        self._native.close()

    def datagram_received(self, data, addr):
        # The endpoint also reads the datagrams already waiting behind this one.
        requests = self._native.datagram(data, addr)
        if requests is not None:
            for token, funcname, args, sender in requests:
                self._serve(token, funcname, args, sender)

    def _serve(self, token, funcname, args, address):
        func = getattr(self, f"rpc_{funcname}", None)
        if func is None or not callable(func):
            msgargs = (self.__class__.__name__, funcname)
            LOG.warning("%s has no callable method rpc_%s; ignoring request", *msgargs)
            self._native.abandon(token)
            return
        if _iscoroutinefunction(func):
            asyncio.ensure_future(self._accept_request(token, [funcname, args], address))
            return
        try:
            response = func(address, *args)
        except Exception:
            LOG.exception("rpc_%s raised; no answer sent to %s", funcname, address)
            self._native.abandon(token)
            return
        self._answer(token, funcname, response)

    def _answer(self, token, funcname, response):
        try:
            self._native.respond(token, response)
        except (TypeError, OverflowError):
            LOG.exception("rpc_%s returned a value that cannot be sent", funcname)

    async def _accept_request(self, msg_id, data, address):
        """Serves one request (``msg_id`` is the endpoint's token for it), as rpcudp's
        ``_accept_request``: an unknown method or a handler that raises gets no answer."""
        funcname, args = data
        func = getattr(self, f"rpc_{funcname}", None)
        if func is None or not callable(func):
            msgargs = (self.__class__.__name__, funcname)
            LOG.warning("%s has no callable method rpc_%s; ignoring request", *msgargs)
            self._native.abandon(msg_id)
            return
        try:
            if _iscoroutinefunction(func):
                response = await func(address, *args)
            else:
                response = func(address, *args)
        except Exception:
            LOG.exception("rpc_%s raised; no answer sent to %s", funcname, address)
            self._native.abandon(msg_id)
            return
        self._answer(msg_id, funcname, response)

    def stats(self):
        """The core's counters (datagrams, duplicates answered, drops by reason, ...)."""
        return self._native.stats()

    def __getattr__(self, name):
        """As rpcudp: a name beginning with "_" or "rpc_" is looked up as usual; any other
        name not found returns ``func(address, *args)``, which calls ``rpc_{name}`` on
        the node at ``address`` and returns a future of ``(True, result)`` or
        ``(False, None)``."""
        if name.startswith("_") or name.startswith("rpc_"):
            return getattr(super(), name)

        try:
            return getattr(super(), name)
        except AttributeError:
            pass

        def func(address, *args):
            loop = asyncio.get_event_loop()
            future = loop.create_future()
            try:
                self._native.call(address, name, args, future)
            except ValueError as e:
                if "not an IP address" not in str(e):
                    raise MalformedMessage(str(e)) from None
                self._native.call(_resolve(self.transport, address), name, args, future)
            LOG.debug("calling remote function %s on %s", name, address)
            return future

        return func


def _dup_socket(transport):
    """A duplicate of the transport's UDP socket for the endpoint to read and send on
    directly (it closes it), or -1 when there is none (a test transport)."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.type != socket.SOCK_DGRAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return -1
    return os.dup(sock.fileno())


def _resolve(transport, address):
    """A host name in a call's address, resolved for the transport's address family."""
    family = socket.AF_INET
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            family = sock.family
    infos = socket.getaddrinfo(address[0], address[1], family, socket.SOCK_DGRAM)
    return infos[0][4][:2]
