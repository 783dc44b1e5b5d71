"""What the node tells its listeners, and how transports reach the node.

:class:`PathChanged` joins the core's session events in the stream a
:meth:`Node.add_listener` callback sees; :class:`Bridge` is the
:class:`~l2session.transports.base.TransportListener` each transport is
started with (it names the node's path and forwards).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from l2session.core.events import SessionEvent

if TYPE_CHECKING:
    from l2session.runtime.node import Node


@dataclass(frozen=True, slots=True)
class PathChanged:
    """A transport reports a path to ``address`` up or down (``reason``)."""

    address: str
    path: str
    up: bool
    reason: str = ""


NodeEvent = SessionEvent | PathChanged
NodeListener = Callable[[NodeEvent], None]


@dataclass(frozen=True, slots=True)
class Bridge:
    """A :class:`TransportListener` that forwards to the node."""

    node: Node
    path: str

    def packet_received(self, data: bytes, address: str, path: str) -> None:
        self.node.packet_received(data, address, path)

    def path_up(self, address: str, path: str) -> None:
        self.node.paths_seen.path_up(address, path)

    def path_down(self, address: str, path: str, reason: str) -> None:
        self.node.relaying.path_down(address, path, reason)
        self.node.paths_seen.path_down(address, path, reason)
