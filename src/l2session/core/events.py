"""Events the session core reports to the runtime and the application.

The manager queues them; the runtime drains them with
:meth:`~l2session.core.management.manager.SessionManager.events` (sans-I/O: nothing is
called back from inside the protocol code).
"""

from __future__ import annotations

from dataclasses import dataclass

from l2session.core.link.envelope import Request
from l2session.core.states import TransitionRecord


@dataclass(frozen=True, slots=True)
class StateChanged:
    """A session moved (the same record as its audit trail entry)."""

    peer_did: str
    record: TransitionRecord


@dataclass(frozen=True, slots=True)
class MessagesAvailable:
    """Messages were delivered and wait in the session's inbox."""

    peer_did: str
    count: int


@dataclass(frozen=True, slots=True)
class SessionAccepted:
    """A peer opened a session with this node (SPEC-018 ``accept``)."""

    peer_did: str


@dataclass(frozen=True, slots=True)
class SessionClosedEvent:
    """A session ended: closed by either side, or cleaned up."""

    peer_did: str
    reason: str


@dataclass(frozen=True, slots=True)
class PacketRejected:
    """A packet was refused (hostile, stale, damaged, or quarantined).

    ``reason`` is a short machine-readable cause for counters; the packet
    changed nothing.
    """

    address: str
    reason: str
    peer_did: str | None = None


@dataclass(frozen=True, slots=True)
class PathMigrated:
    """The peer's route was validated and is now the session's primary
    (``session.address``/``session.path``): it moved there (MIGRATE, or a
    passive migration such as a NAT rebinding).  Keys did not change."""

    peer_did: str
    address: str
    path: str
    previous_address: str
    previous_path: str


@dataclass(frozen=True, slots=True)
class PathValidated:
    """Another route to the peer was validated and joined the session's
    routes (``SessionManager.add_route``, or multipath traffic from it)."""

    peer_did: str
    address: str
    path: str


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """This node's Membrane refused message ``seq`` from the peer (a
    capability request); the application never sees it, and the peer is
    sent a denial with ``reason``.  The audit log has the decision."""

    peer_did: str
    seq: int
    request: Request | None
    reason: str


@dataclass(frozen=True, slots=True)
class MessageDenied:
    """The peer refused our message ``seq``: its Membrane denied the
    capability the message asked for, for ``reason``."""

    peer_did: str
    seq: int
    reason: str


SessionEvent = (
    StateChanged
    | MessagesAvailable
    | SessionAccepted
    | SessionClosedEvent
    | PacketRejected
    | PathMigrated
    | PathValidated
    | RequestRefused
    | MessageDenied
)
