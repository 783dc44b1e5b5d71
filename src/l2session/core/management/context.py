"""The context a session API call runs in: SPEC-018 §5.2's capabilities.

SPEC-018 writes ``with ctx where ctx.has(.net_connect, .crypto_pqxdh,
.did_resolve, .time)``: a call may only do what its context grants.  Here
each capability is the object that provides it, so granting one means
passing it and withholding one means leaving it out:

=============  ==============================================================
time           a :class:`~l2session.core.clock.TimeSource` (virtual in tests)
did_resolve    a :class:`~l2session.identity.resolver.DidResolver`
crypto_pqxdh   :class:`LocalKeys`: this node's identity, prekeys, replay guard
net_connect    a :class:`PeerDirectory`: where a DID can be reached
=============  ==============================================================

Beyond the spec's four, ``store`` (a :class:`~l2session.core.lifecycle.persistence.Journal`)
makes persistent sessions durable: without it a node keeps everything in
memory and a restart loses queues and tickets.

Calling without a needed capability raises
:class:`~l2session.errors.MissingCapability` naming it, before anything
happens.  Randomness is not optional: every context carries a
:class:`~l2session.crypto.rng.RandomSource` (the OS CSPRNG in production,
a seeded one in tests).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from l2session.core.clock import TimeSource
from l2session.core.lifecycle.persistence import Journal
from l2session.crypto.handshake_guard import HandshakeReplayGuard
from l2session.crypto.primitives import Encapsulator
from l2session.crypto.rng import RandomSource
from l2session.errors import MissingCapability
from l2session.identity.bundle import PrekeyBundle
from l2session.identity.identity import Identity
from l2session.identity.prekeys import PrekeyStore
from l2session.identity.resolver import DidResolver


class Capability(StrEnum):
    NET_CONNECT = "net_connect"
    CRYPTO_PQXDH = "crypto_pqxdh"
    DID_RESOLVE = "did_resolve"
    TIME = "time"


class PeerDirectory(Protocol):
    """Where a DID can be reached: a transport address, or None."""

    def address_of(self, did: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class StaticDirectory:
    """A fixed DID -> address table (tests, static deployments)."""

    addresses: Mapping[str, str]

    def address_of(self, did: str) -> str | None:
        return self.addresses.get(did)


@dataclass(slots=True)
class LocalKeys:
    """This node's key material for PQXDH: identity, private prekeys, and
    the memory of handshakes already answered."""

    identity: Identity
    prekeys: PrekeyStore = field(repr=False)
    guard: HandshakeReplayGuard = field(default_factory=HandshakeReplayGuard, repr=False)
    #: ML-KEM encapsulation override (deterministic vectors in tests).
    encapsulator: Encapsulator | None = field(default=None, repr=False)

    @property
    def did(self) -> str:
        return self.identity.did_text


#: Optional shortcut: a peer's current prekey bundle if known locally (a
#: directory, a cache); otherwise it is fetched from the peer itself.
BundleLookup = Callable[[str], PrekeyBundle | None]


@dataclass(frozen=True, slots=True)
class Context:
    """Capabilities for session calls (and the session manager bound to them:
    :func:`l2session.core.management.manager.manager_for`)."""

    rng: RandomSource
    time: TimeSource | None = None
    did_resolve: DidResolver | None = None
    crypto_pqxdh: LocalKeys | None = None
    net_connect: PeerDirectory | None = None
    bundles: BundleLookup | None = None
    #: Durable storage for persistent sessions (SQLite or in-memory).
    store: Journal | None = None
    #: The session manager bound to this context, set by the first
    #: ``SessionManager(ctx)`` (``manager.manager_for(ctx)`` reads it).  Typed
    #: ``object`` because the manager imports this module, not the reverse.
    _manager: list[object] = field(default_factory=list, repr=False, compare=False)

    def has(self, *capabilities: Capability) -> bool:
        return all(getattr(self, c.value) is not None for c in capabilities)

    def require(self, operation: str, *capabilities: Capability) -> None:
        missing = [c.value for c in capabilities if getattr(self, c.value) is None]
        if missing:
            raise MissingCapability(
                f"{operation} needs the context capabilities {', '.join(missing)}; "
                f"pass them to Context(...)"
            )

    def now(self) -> float:
        if self.time is None:
            raise MissingCapability("this operation needs the 'time' capability")
        return self.time.now()

    @property
    def keys(self) -> LocalKeys:
        if self.crypto_pqxdh is None:
            raise MissingCapability("this operation needs the 'crypto_pqxdh' capability")
        return self.crypto_pqxdh

    @property
    def resolver(self) -> DidResolver:
        if self.did_resolve is None:
            raise MissingCapability("this operation needs the 'did_resolve' capability")
        return self.did_resolve
