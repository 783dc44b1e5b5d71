"""The limits of one node's transports and tables, in one validated place.

Every cap a node enforces outside the session core (whose limits are
:class:`~l2session.core.config.SessionConfig` fields: admission rates and
CPU share, queues, quarantine) is a field here, passed as
``Node(limits=NodeLimits(...))`` and is a key of the node config file
and a flag of ``l2session node`` under its own name (cli/node_options.py).
The defaults are sized for a busy node on one machine -- ten thousand
peers -- not for a laptop: a cap that an honest crowd reaches is an
outage, and the memory each cap bounds is small (see docs/NETWORK.md,
"Limits", for each one's reason and cost).

A peer refused at a connection cap is told so (μTCP: a REFUSE frame;
QUIC: CONNECTION_REFUSED in an Initial) and its ``establish`` fails with
:class:`~l2session.errors.PeerRefused`, never with "no answer".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Final

from l2session.errors import ConfigError

#: Default QUIC connection cap (both roles): one connection per peer.
DEFAULT_MAX_CONNECTIONS: Final = 16_384
#: Default μTCP connection cap (each direction counts).  Twice the QUIC
#: one: a peer that connects to a node holds two μTCP connections with it,
#: its own and the one the node dials back to the peer's listening port to
#: answer its BUNDLE_REQUEST (an unauthenticated request arriving on an
#: inbound connection is a claim, not a route: transports/tcp.py).  At
#: 16,384, ten thousand peers were refused past about 8,000.
DEFAULT_TCP_MAX_CONNECTIONS: Final = 32_768
#: Default ``listen(2)`` backlog of the μTCP listener.
DEFAULT_LISTEN_BACKLOG: Final = 4_096
#: The largest backlog accepted (Linux clamps any larger one to
#: net.core.somaxconn, 4,096 by default).
MAX_LISTEN_BACKLOG: Final = 65_535


@dataclass(frozen=True, slots=True)
class NodeLimits:
    """Caps of a node's transports and runtime tables (see module doc)."""

    #: μTCP connections open at once (both directions).  An idle one costs
    #: about 3 KB (asyncio transport and protocol objects) and one file
    #: descriptor; beyond it new inbound connections are refused (REFUSE).
    tcp_max_connections: int = DEFAULT_TCP_MAX_CONNECTIONS
    #: Inbound μTCP connections that have not sent their HELLO yet.  A
    #: crowd arriving at once needs room here while the loop is busy with
    #: handshakes; a HELLO arrives within one round trip otherwise.
    tcp_max_unidentified: int = 1_024
    #: Connections the kernel completes and queues for the μTCP listener
    #: until the loop accepts them (``listen(2)``'s backlog; Linux clamps
    #: it to net.core.somaxconn).  asyncio's default of 100 overflows when
    #: a crowd connects while the loop runs handshakes: the kernel then
    #: drops SYNs and each peer's connect waits out its 1 s, 3 s resends.
    tcp_listen_backlog: int = DEFAULT_LISTEN_BACKLOG
    #: Bytes of incomplete frames held across all μTCP connections.
    tcp_max_buffered_bytes: int = 64 << 20
    #: Bytes queued per μTCP connection before packets are dropped.
    tcp_max_queue_bytes: int = 16 << 20
    #: Seconds an inbound μTCP connection may take to send its HELLO.
    tcp_hello_timeout: float = 10.0
    #: Seconds a μTCP frame may take to arrive once started (slow drip).
    tcp_frame_timeout: float = 30.0
    #: QUIC connections of both roles; further Initials are answered
    #: CONNECTION_REFUSED.  An idle qh3 connection costs 40-50 KB (see
    #: docs/NETWORK.md), so this bounds about 800 MB at the default.
    quic_max_connections: int = DEFAULT_MAX_CONNECTIONS
    #: Bytes queued per QUIC connection before packets are dropped.
    quic_max_queue: int = 16 << 20
    #: Sessions opened by peers and not yet taken by ``accept()`` (the
    #: oldest is dropped from the list, not closed).
    max_pending_accepts: int = 1_024
    #: Path failure reasons remembered (for ``establish`` errors), and the
    #: addresses the QUIC stall watch follows at once (runtime/stall.py):
    #: both hold at most one entry per address a session uses.
    max_tracked_addresses: int = 65_536

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.type == "float":
                if not (
                    isinstance(value, int | float)
                    and not isinstance(value, bool)
                    and math.isfinite(value)
                    and value > 0
                ):
                    raise ConfigError(
                        f"NodeLimits.{item.name} must be a positive number of seconds, "
                        f"got {value!r}"
                    )
            elif not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1 << 40:
                raise ConfigError(
                    f"NodeLimits.{item.name} must be an integer from 1 to 2**40, got {value!r}"
                )
        if self.tcp_listen_backlog > MAX_LISTEN_BACKLOG:
            raise ConfigError(
                f"NodeLimits.tcp_listen_backlog must be at most {MAX_LISTEN_BACKLOG}, "
                f"got {self.tcp_listen_backlog!r}"
            )


__all__ = [
    "DEFAULT_LISTEN_BACKLOG",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_TCP_MAX_CONNECTIONS",
    "MAX_LISTEN_BACKLOG",
    "NodeLimits",
]
