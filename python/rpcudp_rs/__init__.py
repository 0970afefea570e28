"""rpcudp_rs: Python's rpcudp and kademlia, by changing one import.

- ``rpcudp_rs.protocol.RPCProtocol`` in place of ``rpcudp.protocol.RPCProtocol`` (5.0.1);
- ``rpcudp_rs.kademlia.Server`` in place of ``kademlia.network.Server`` (2.2.3).

Importing starts nothing: no thread, socket or runtime exists until a protocol is
connected to a transport or a server listens.
"""

from rpcudp_rs._native import Ext

__all__ = ["Ext"]
__version__ = "0.1.0"
