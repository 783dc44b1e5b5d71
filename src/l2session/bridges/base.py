"""The bridge interface, and how a bridge is found.

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

:func:`load_bridge` maps a :class:`BridgeProtocol` to an implementation:
Nostr is built in (with the ``nostr`` extra), ActivityPub and XMTP are named
but not available, and ``Custom(name)`` bridges come from the entry-point
group ``l2session.bridges`` (a class or factory taking keyword options).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Final, Protocol, runtime_checkable

from l2session.errors import BridgeUnavailable
from l2session.identity.foreign import BridgeProtocol, ForeignIdentity
from l2session.identity.identity import Identity

#: The entry-point group custom bridges register under.
ENTRY_POINT_GROUP: Final = "l2session.bridges"


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


def load_bridge(
    protocol: BridgeProtocol | str, identity: Identity, options: Mapping[str, Any] | None = None
) -> Bridge:
    """A bridge for ``protocol``, built with ``options`` (for Nostr:
    ``relays``, and the optional ``dm_relays_lookup``).  Raises
    BridgeUnavailable saying what is missing."""
    proto = BridgeProtocol.parse(protocol) if isinstance(protocol, str) else protocol
    opts = dict(options or {})
    if proto == BridgeProtocol.NOSTR:
        try:
            from l2session.bridges.nostr import NostrBridge
        except ImportError as exc:
            raise BridgeUnavailable(
                f"the Nostr bridge needs the nostr extra: pip install 'l2session[nostr]' ({exc})"
            ) from None
        return NostrBridge(identity, **opts)
    if proto in (BridgeProtocol.ACTIVITYPUB, BridgeProtocol.XMTP):
        raise BridgeUnavailable(
            f"the {proto.name} bridge is not available: it is named by the L2 overview but "
            "not implemented yet (Nostr is; a custom bridge can be added through the "
            f"{ENTRY_POINT_GROUP!r} entry points)"
        )
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == proto.name]
    if not found:
        raise BridgeUnavailable(
            f"no custom bridge named {proto.name!r}: no entry point {proto.name!r} in the "
            f"group {ENTRY_POINT_GROUP!r} is installed"
        )
    try:
        factory = found[0].load()
    except Exception as exc:
        raise BridgeUnavailable(f"custom bridge {proto.name!r} failed to load: {exc}") from None
    bridge = factory(identity, **opts)
    if not isinstance(bridge, Bridge):
        raise BridgeUnavailable(f"custom bridge {proto.name!r} does not implement Bridge")
    return bridge
