"""What a transport is, as the node runtime sees it.

A transport carries whole session packets to and from *canonical
addresses* (``host:port``, see :mod:`.address`) over one named path
(``"quic"`` or ``"tcp"``).  It hides connections entirely: ``send`` to an
address it has no connection to starts one and queues the packet (bounded);
whatever arrives is handed to the :class:`TransportListener` with the
sender's canonical address.  Delivery is best effort, like a datagram: the
session core acknowledges and resends, so a transport may drop a packet
when a connection dies or its queue is full -- it must never deliver one
twice from one send, corrupt one, or block.

Path health is reported as edges: ``path_up`` when a connection to an
address is established (either direction), ``path_down`` when connecting
fails or the last connection to an address is lost.  The node turns these
into :meth:`SessionManager.connectivity` calls, which is how QUIC -> μTCP
fallback and recovery happen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Protocol

#: How a ``path_down`` reason starts when the peer refused us explicitly
#: (a μTCP REFUSE frame, a QUIC CONNECTION_REFUSED): it is there and
#: running, but at a limit -- not "is a node running there?".
REFUSED_PREFIX: Final = "refused by the node"


class TransportListener(Protocol):
    """Callbacks from a transport, run on the event loop thread."""

    def packet_received(self, data: bytes, address: str, path: str) -> None: ...

    def path_up(self, address: str, path: str) -> None: ...

    def path_down(self, address: str, path: str, reason: str) -> None: ...


@dataclass(slots=True)
class TransportStats:
    """Counters a transport keeps (shown by ``l2session sessions`` and
    benchmarks).  ``dropped`` counts packets given to ``send`` that never
    reached the socket (connect failed, queue full, connection lost)."""

    packets_sent: int = 0
    packets_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    connects: int = 0
    connect_failures: int = 0
    accepted: int = 0
    dropped: int = 0
    malformed: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class Transport(Protocol):
    """One path of a node: QUIC or μTCP (see module docstring)."""

    #: The path name the session core knows this transport by.
    name: str
    stats: TransportStats

    async def start(self, listener: TransportListener, host: str, port: int) -> int:
        """Listen on ``host:port`` (port 0: any free port) and return the
        port bound."""
        ...

    def send(self, address: str, data: bytes) -> None:
        """Queue one packet for ``address``; never blocks, never raises for
        network trouble (that is reported through ``path_down``)."""
        ...

    def is_connected(self, address: str) -> bool: ...

    def dialable(self, address: str) -> bool:
        """False when the peer at ``address`` said it does not listen there
        (μTCP HELLO port 0): it is reached only over its live connection,
        and the node must never dial it."""
        ...

    def progressed(self, address: str) -> bool:
        """Whether a connection to ``address`` has heard from the peer, even
        if it is not up yet (an establishment's path race, core/paths/race.py,
        waits for such a path instead of racing the next one)."""
        ...

    def probe(self, address: str) -> None:
        """Try to connect to ``address`` without sending a packet (QUIC is
        probed again this way after a fallback); the result is reported as
        ``path_up`` or ``path_down``."""
        ...

    def disconnect(self, address: str) -> None:
        """Drop every connection to ``address`` (no ``path_down`` report)."""
        ...

    def confirm(self, address: str) -> None:
        """Called *during* ``packet_received``: the session core
        authenticated the packet being delivered as coming from the peer it
        reaches at ``address``.  A transport whose addresses are claims
        (μTCP's HELLO names a port anyone on the host can claim) sends to a
        new connection only once it is confirmed; others ignore it."""
        ...

    async def close(self) -> None:
        """Stop listening and close every connection."""
        ...
