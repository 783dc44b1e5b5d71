"""Real transports: QUIC (qh3), μTCP (length-framed TCP) and UDP discovery.

They sit under the node runtime and above the operating system's sockets;
the session core never sees them (it exchanges packets and addresses).
"""

from l2session.transports.address import InvalidAddress, format_address, parse_address
from l2session.transports.base import Transport, TransportListener, TransportStats

__all__ = [
    "InvalidAddress",
    "Transport",
    "TransportListener",
    "TransportStats",
    "format_address",
    "parse_address",
]
