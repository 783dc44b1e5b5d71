"""A tiny custom bridge, found through the ``l2session.bridges`` entry
points: every message sent to a peer comes straight back from it."""

from __future__ import annotations

import hashlib
from typing import Any

from l2session.bridges.base import BridgeHooks, ForeignMessage, LinkStatus, Sealed
from l2session.identity.foreign import BridgeProtocol, ForeignIdentity


class LoopbackBridge:
    protocol = BridgeProtocol.Custom("loopback")

    def __init__(self, identity: Any, **options: Any) -> None:
        self._local = ForeignIdentity(self.protocol, b"me")
        self._hooks: BridgeHooks | None = None

    @property
    def local_id(self) -> ForeignIdentity:
        return self._local

    async def start(self, hooks: BridgeHooks, since: float) -> None:
        self._hooks = hooks
        hooks.on_links(1, "loopback up")
        hooks.on_synced()

    async def stop(self) -> None:
        self._hooks = None

    async def reconnect(self) -> None:
        return None

    def seal(self, peer: ForeignIdentity, text: str, seq: int) -> Sealed:
        digest = hashlib.sha256(f"{peer.text}/{seq}/{text}".encode()).hexdigest()
        return Sealed(digest, f"{seq}\n{text}".encode())

    async def publish(self, peer: ForeignIdentity, sealed: Sealed) -> int:
        if self._hooks is not None:
            seq, _, text = sealed.event.decode().partition("\n")
            at = 1000.0 + int(seq)  # each echo a second later than the one before
            self._hooks.on_message(ForeignMessage(sealed.event_id, peer, "echo: " + text, at, at))
        return 1

    def links(self) -> list[LinkStatus]:
        return [LinkStatus("loopback", True, True)]
