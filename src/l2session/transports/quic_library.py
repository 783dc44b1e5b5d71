"""The one place the QUIC library is imported (qh3 today).

qh3 is an aioquic fork with native packet and crypto code and the same
sans-I/O API (``QuicConnection``, ``QuicConfiguration``, ``events``), so the
transport is written against these names only.  Swapping in aioquic means
changing this module: its names live under ``aioquic.quic`` instead, its
header parser is ``aioquic.quic.packet.pull_quic_header(Buffer(data=...),
host_cid_length=...)`` where qh3 takes ``(data, offset, cid_length)``, it
has no ``QuicConnection.receive_many_datagrams`` (:func:`receive_datagrams`
then feeds them one by one) and no batching socket layer
(``create_batching_endpoint = None``).

``create_batching_endpoint(loop, factory, sock=..., gro_segment_size=...)``
is qh3's own UDP socket layer, the one its ``connect`` uses: on Linux it
reads datagrams in batches (recvmmsg, UDP GRO), hands a protocol that has
``datagrams_received(list, addr)`` a whole batch at once, and offers
``transport.sendto_many(datagrams, addr)`` (UDP GSO, one system call for
many datagrams; EAGAIN queued, GSO switched off where the kernel or device
refuses it); elsewhere it is a plain ``create_datagram_endpoint``.  It is
not public API (``qh3.asyncio._transport``), hence the guarded import: when
it is missing, the endpoint runs on a plain asyncio datagram endpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from qh3._hazmat import pull_quic_header
from qh3.quic import events
from qh3.quic.configuration import QuicConfiguration
from qh3.quic.connection import QuicConnection
from qh3.quic.packet import QuicErrorCode, QuicPacketType

BatchingEndpointFactory = Callable[
    ..., Awaitable[tuple[asyncio.BaseTransport, asyncio.BaseProtocol]]
]


def receive_datagrams(
    quic: QuicConnection, datagrams: list[bytes], addr: tuple[Any, ...], now: float
) -> None:
    """Feed ``quic`` datagrams from one source, in one call where the library
    has one (qh3 2.x: its core then also merges their stream data)."""
    receive_many = getattr(quic, "receive_many_datagrams", None)
    if receive_many is not None:
        receive_many(datagrams, addr, now)
        return
    for data in datagrams:
        quic.receive_datagram(data, addr, now)


create_batching_endpoint: BatchingEndpointFactory | None
try:
    from qh3.asyncio._transport import create_optimized_datagram_transport
except ImportError:  # another qh3 version: plain asyncio datagram endpoints
    create_batching_endpoint = None
else:
    create_batching_endpoint = create_optimized_datagram_transport

__all__ = [
    "QuicConfiguration",
    "QuicConnection",
    "QuicErrorCode",
    "QuicPacketType",
    "create_batching_endpoint",
    "events",
    "pull_quic_header",
    "receive_datagrams",
]
