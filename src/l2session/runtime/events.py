"""What the node tells its listeners, and how transports reach the node.

:class:`PathChanged` joins the core's session events in the stream a
:meth:`Node.add_listener` callback sees; :class:`Bridge` is the
:class:`~l2session.transports.base.TransportListener` each transport is
started with (it names the node's path and forwards).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from l2session.core.events import SessionEvent


@dataclass(frozen=True, slots=True)
class PathChanged:
    """A transport reports a path to ``address`` up or down (``reason``)."""

    address: str
    path: str
    up: bool
    reason: str = ""


NodeEvent = SessionEvent | PathChanged
NodeListener = Callable[[NodeEvent], None]


class PathLoss(Protocol):
    """Who is told that a path to an address went down."""

    def path_down(self, address: str, path: str, reason: str) -> None: ...


class PathEdges(PathLoss, Protocol):
    """Who is told both edges of a path (runtime/paths.py's PathMonitor)."""

    def path_up(self, address: str, path: str) -> None: ...


class BridgeHost(Protocol):
    """The port :class:`Bridge` forwards to (the Node satisfies it): the
    packet intake, the path monitor, and the relay path, which must hear of
    a lost path first (it moves its relays to the next path)."""

    def packet_received(self, data: bytes, address: str, path: str) -> None: ...

    @property
    def paths_seen(self) -> PathEdges: ...

    @property
    def relaying(self) -> PathLoss: ...


@dataclass(frozen=True, slots=True)
class Bridge:
    """A :class:`TransportListener` that forwards to the node."""

    node: BridgeHost
    path: str

    def packet_received(self, data: bytes, address: str, path: str) -> None:
        self.node.packet_received(data, address, path)

    def path_up(self, address: str, path: str) -> None:
        self.node.paths_seen.path_up(address, path)

    def path_down(self, address: str, path: str, reason: str) -> None:
        self.node.relaying.path_down(address, path, reason)
        self.node.paths_seen.path_down(address, path, reason)
