"""How a bridge is found, and (re-exported) the bridge interface.

The interface -- :class:`Bridge`, :class:`BridgeHooks`,
:class:`ForeignMessage`, :class:`Sealed`, :class:`LinkStatus` -- lives in
bridges/interface.py, below the built-in bridges that implement it, and is
importable from here as before (custom bridges import it from here).

:func:`load_bridge` maps a :class:`BridgeProtocol` to an implementation:
Nostr is built in (with the ``nostr`` extra, imported only when asked for,
since it needs that extra), ActivityPub and XMTP are named but not
available, and ``Custom(name)`` bridges come from the entry-point group
``l2session.bridges`` (a class or factory taking keyword options).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, Final

from l2session.bridges.interface import (
    Bridge,
    BridgeFactory,
    BridgeHooks,
    ForeignMessage,
    LinkStatus,
    Sealed,
)
from l2session.errors import BridgeUnavailable
from l2session.identity.foreign import BridgeProtocol
from l2session.identity.identity import Identity

__all__ = [
    "ENTRY_POINT_GROUP",
    "Bridge",
    "BridgeFactory",
    "BridgeHooks",
    "ForeignMessage",
    "LinkStatus",
    "Sealed",
    "load_bridge",
]

#: The entry-point group custom bridges register under.
ENTRY_POINT_GROUP: Final = "l2session.bridges"


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
