"""The one place the QUIC library is imported (qh3 today).

qh3 is an aioquic fork with native packet and crypto code and the same
sans-I/O API (``QuicConnection``, ``QuicConfiguration``, ``events``), so the
transport is written against these names only.  Swapping in aioquic means
changing this module: its names live under ``aioquic.quic`` instead, and its
header parser is ``aioquic.quic.packet.pull_quic_header(Buffer(data=...),
host_cid_length=...)`` where qh3 takes ``(data, offset, cid_length)``.
"""

from __future__ import annotations

from qh3._hazmat import pull_quic_header
from qh3.quic import events
from qh3.quic.configuration import QuicConfiguration
from qh3.quic.connection import QuicConnection
from qh3.quic.packet import QuicErrorCode, QuicPacketType

__all__ = [
    "QuicConfiguration",
    "QuicConnection",
    "QuicErrorCode",
    "QuicPacketType",
    "events",
    "pull_quic_header",
]
