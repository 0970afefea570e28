"""The exceptions of rpcudp_rs (as rpcudp's ``rpcudp.exceptions``)."""


class MalformedMessage(Exception):
    """Message does not contain what is expected (a call over the 8 KiB body limit)."""
