"""SPEC-018 §5.2 by its names: ``establish``, ``resume``, ``accept``, ``tick``.

Sans-I/O forms: each acts on the session manager bound to ``ctx`` and
returns at once; packets to send wait in ``manager_for(ctx).datagrams_to_send()``
and the next deadline is ``manager_for(ctx).get_timer()``.  The asyncio runtime
wraps the same calls with waiting.
"""

from __future__ import annotations

from collections.abc import Iterable

from l2session.core.config import SessionConfig
from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.link.session import Session
from l2session.core.management.context import Capability, Context
from l2session.core.management.manager import manager_for


def establish(peer_did: str, config: SessionConfig | None, ctx: Context) -> Session:
    """Open a session with ``peer_did``; needs net_connect, crypto_pqxdh,
    did_resolve and time."""
    return manager_for(ctx).establish(peer_did, config)


def resume(peer_did: str, stored: StoredSession, ctx: Context) -> Session:
    """Resume a stored session without KEM work."""
    return manager_for(ctx).resume(peer_did, stored)


def accept(
    request: bytes, config: SessionConfig | None, ctx: Context, *, address: str, path: str = "quic"
) -> Session | None:
    """Answer an incoming handshake request packet from ``address``."""
    return manager_for(ctx).accept(request, address, path, config)


def tick(sessions: Iterable[Session] | None, ctx: Context) -> None:
    """Run due timers (all sessions when ``sessions`` is None)."""
    ctx.require("tick", Capability.TIME)
    manager_for(ctx).tick(sessions)
