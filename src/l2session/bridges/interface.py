"""The bridge interface: what a bridge is and what it hands the runtime.

A bridge connects the node to one foreign network.  It owns every foreign
socket (DESIGN.md §2.9: a Nostr relay's WebSocket stays inside the Nostr
bridge and is never a session transport) and turns the network's private
messages into :class:`ForeignMessage` values and back.  The runtime
(runtime/federation.py) holds the sessions, the store and the Membrane; a
bridge holds none of them, so a new bridge is small:

* :meth:`Bridge.start` connects and calls ``on_links`` whenever the number
  of usable links (relays connected and subscribed) changes, and
  ``on_message`` with every message for this node, oldest first within a
  backlog; a message it cannot authenticate it reports through ``on_refused``
  and drops.
* :meth:`Bridge.seal` turns a message into the network's finished event
  (signed, encrypted) with a stable id, which the runtime persists *before*
  :meth:`Bridge.publish` sends it, so a republished event is the same event.
* :meth:`Bridge.publish` returns how many links accepted it.

How a bridge is found for a protocol is bridges/base.py's
:func:`~l2session.bridges.base.load_bridge`, which imports the built-in
bridges; they import this module, so the interface sits below both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from l2session.identity.foreign import BridgeProtocol, ForeignIdentity


@dataclass(frozen=True, slots=True)
class ForeignMessage:
    """A private message from a foreign peer, authenticated by the bridge.

    ``event_id`` identifies it on the network (deduplication key);
    ``created_at`` is the time of the outer event (what subscriptions filter
    on); ``sent_at`` the sender's own time; ``seq`` the sender's sequence
    number when the sender is an l2session node (None from other clients).
    """

    event_id: str
    sender: ForeignIdentity
    text: str
    created_at: float
    sent_at: float
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Sealed:
    """A message as the network's finished event: ``event`` is opaque
    bytes the bridge can publish again, ``event_id`` its stable id."""

    event_id: str
    event: bytes


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """One link (a relay) as ``l2session sessions`` shows it."""

    url: str
    connected: bool
    subscribed: bool


@dataclass(frozen=True, slots=True)
class BridgeHooks:
    """How a bridge reports to the runtime (see module doc)."""

    on_links: Callable[[int, str], None]
    on_message: Callable[[ForeignMessage], None]
    on_refused: Callable[[str, str], None]
    #: Called when a backlog (stored events after a (re)subscription) ends.
    on_synced: Callable[[], None]


@runtime_checkable
class Bridge(Protocol):
    """What every bridge implements (see module doc)."""

    protocol: BridgeProtocol

    @property
    def local_id(self) -> ForeignIdentity:
        """This node's identity on the foreign network."""
        ...

    async def start(self, hooks: BridgeHooks, since: float) -> None:
        """Connect, subscribe to messages for this node from ``since`` on."""
        ...

    async def stop(self) -> None: ...

    async def reconnect(self) -> None:
        """Try every link that is down again now."""
        ...

    def seal(self, peer: ForeignIdentity, text: str, seq: int) -> Sealed: ...

    async def publish(self, peer: ForeignIdentity, sealed: Sealed) -> int:
        """Send ``sealed``; the number of links that accepted it."""
        ...

    def links(self) -> list[LinkStatus]: ...


#: What a bridge factory is called with: the node's identity and options.
BridgeFactory = Callable[..., Bridge]
