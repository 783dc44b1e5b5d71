"""The control socket's view of federated sessions (``l2session sessions``
and ``l2session send nostr:npub1…``), kept apart from runtime/control.py
so that the native control protocol stays as it is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from l2session.errors import SessionTimeout

if TYPE_CHECKING:
    from l2session.runtime.node import Node

Json = dict[str, Any]


def federated_rows(node: Node) -> list[Json]:
    """One row per federated session, in the shape of a native one plus
    ``bridge`` and ``relays`` (url, connected, subscribed)."""
    federation = node.federation
    if federation is None:
        return []
    now = node.clock.now()
    rows: list[Json] = []
    for handle in federation.sessions():
        history = handle.history
        started = history[0].at if history else now
        rows.append(
            {
                "peer": handle.peer,
                "state": handle.state.value,
                "transport": str(handle.protocol),
                "address": None,
                "age_s": round(now - started, 1),
                "key_epoch": None,
                "queued": handle.queued,
                "unread": handle.available,
                "bridge": str(handle.protocol),
                "relays": [
                    {"url": r.url, "connected": r.connected, "subscribed": r.subscribed}
                    for r in handle.relays()
                ],
            }
        )
    return rows


async def send_federated(node: Node, peer: str, data: bytes, timeout: float) -> Json:
    """Queue ``data`` to a foreign peer and wait (up to ``timeout``) until a
    relay accepted it: for a federated session, "delivered" means that."""
    handle = node.federate(peer)
    seq = handle.send_nowait(data)
    try:
        await handle.flush(timeout)
        accepted = True
    except SessionTimeout:
        accepted = False
    return {
        "ok": True,
        "seq": seq,
        "delivered": accepted,
        "denied": None,
        "transport": str(handle.protocol),
        "bridge": True,
    }
