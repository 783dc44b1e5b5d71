"""Binding a node's paths to one port number (UDP for QUIC, TCP for μTCP).

With port 0 the first transport picks a free port and the others must get
the same number; when one of them finds it taken, everything is closed and
tried again, up to :data:`PORT_ATTEMPTS` times.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from l2session.errors import TransportFailed
from l2session.runtime.limits import NodeLimits
from l2session.transports.address import format_address
from l2session.transports.base import Transport, TransportListener
from l2session.transports.quic import QuicTransport
from l2session.transports.tcp import TcpTransport

#: Attempts to find a port free on both UDP and TCP when listening on port 0.
PORT_ATTEMPTS: Final = 20


async def bind_paths(
    paths: tuple[str, ...],
    host: str,
    requested_port: int,
    make: Callable[[str], Transport],
    listener: Callable[[str], TransportListener],
) -> tuple[dict[str, Transport], int]:
    """Started transports by path, and the port they share."""
    attempts = PORT_ATTEMPTS if requested_port == 0 else 1
    last: Exception | None = None
    for _ in range(attempts):
        port = requested_port
        started: dict[str, Transport] = {}
        try:
            for path in paths:
                transport = make(path)
                port = await transport.start(listener(path), host, port)
                started[path] = transport
        except TransportFailed as error:
            last = error
            for transport in started.values():
                await transport.close()
            continue
        return started, port
    raise TransportFailed(f"cannot listen on {format_address(host, requested_port)}: {last}")


def make_transport(
    path: str,
    *,
    limits: NodeLimits,
    connect_timeout: float,
    quic_idle_timeout: float,
    advertise: bool,
) -> Transport:
    """A fresh transport for ``path`` (``"quic"`` or ``"tcp"``) within the
    node's ``limits``; ``advertise`` False: μTCP's HELLO says port 0 and the
    QUIC ALPN offer says outbound-only (an outbound-only node: peers never
    dial it)."""
    if path == "quic":
        return QuicTransport(
            connect_timeout=connect_timeout,
            idle_timeout=quic_idle_timeout,
            max_connections=limits.quic_max_connections,
            max_queue=limits.quic_max_queue,
            advertise=advertise,
        )
    return TcpTransport(
        connect_timeout=connect_timeout,
        advertise=advertise,
        max_connections=limits.tcp_max_connections,
        max_unidentified=limits.tcp_max_unidentified,
        max_buffered_bytes=limits.tcp_max_buffered_bytes,
        max_queue_bytes=limits.tcp_max_queue_bytes,
        hello_timeout=limits.tcp_hello_timeout,
        frame_timeout=limits.tcp_frame_timeout,
        listen_backlog=limits.tcp_listen_backlog,
    )
