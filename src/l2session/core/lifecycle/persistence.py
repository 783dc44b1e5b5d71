"""The core's view of durable storage: what it writes, what it reads back.

The core is sans-I/O, so it never touches a file.  It is handed a
:class:`Journal` (``Context.store``) and tells it, synchronously, each
change that must survive a restart; the journal buffers them, and
:meth:`Journal.commit` makes everything buffered durable at once (group
commit).  :mod:`l2session.store` has two implementations with the same
behaviour: SQLite for nodes and an in-memory one for tests.

What is durable, and when (DESIGN.md §4):

* an outbound message, from :meth:`~l2session.core.link.session.Session.send`
  until the peer acknowledges it, with its stream's next sequence number;
* an inbound message, from its arrival until the application takes it, with
  the stream's high-water mark (``next_expected``) for duplicate suppression;
* the resumption tickets (so a restarted node resumes instead of running a
  full handshake), the private prekeys whenever they change (the manager
  watches ``PrekeyStore.generation`` at every commit, so a one-time prekey
  spent by any code is stored before the next packet leaves), the audit
  trail of state transitions, and the handshake replay guard (every INIT
  answered, until it is stale).

The commit points are what make delivery exactly-once across restarts:

1. :meth:`SessionManager.datagrams_to_send` commits before it hands out a
   single packet (write-ahead), and then raises a *barrier*
   (:meth:`Journal.sync`) if any packet is about to leave.  So a message is
   durable before it is first transmitted, an ACK or SACK never leaves
   before the messages it acknowledges are stored, a denial notice never
   leaves before the refusal is, and a consumed ticket or one-time prekey
   is gone on disk before the answer that used it leaves.
2. ``receive``/``receive_many`` commit the hand-off, with a barrier, before
   returning, so a message the application was given is never given again
   after a crash.
3. ``send`` is durable at the next commit.  After a restart,
   ``Session.sent`` tells the application how many messages of the stream
   survived; a crash between ``send`` and the commit loses the message and
   its sequence number together, so counting from ``sent`` repeats nothing
   and skips nothing.

Two kinds of crash, two promises (docs/STORE.md, "Durability modes").
:meth:`Journal.commit` is atomic and survives the *process* dying (``kill
-9``, an OOM kill).  :meth:`Journal.sync` is the barrier: with the default
``durability="power"`` everything committed before it also survives power
loss and a kernel panic, so every promise made to the peer (point 1) and to
the application (point 2) holds through a power cut.  One barrier covers
every commit before it, so a burst of traffic pays for one fsync (group
commit), not one per message or per commit.  With the opt-in
``durability="process"`` the barrier does nothing: a power cut may then
take back acknowledgements already given (the peer has dropped those
messages: they are lost) and bring back a consumed ticket or one-time
prekey (a replay of the packet that spent it would be accepted again).

Nothing here is written before the packet that caused it authenticated:
the session calls the journal only from code that runs after decryption.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Self, TypeVar

from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.link.delivery import Inbound, Outbound
from l2session.core.link.envelope import AccessRecord
from l2session.core.states import TransitionRecord

S_contra = TypeVar("S_contra", contravariant=True)


@dataclass(frozen=True, slots=True)
class RouteRecord:
    """A session's primary route changed, as the audit log keeps it: why a
    session now runs over μTCP instead of QUIC, or at another address, is
    something an operator asks after the fact (keys did not change)."""

    #: The peer DID of the session.
    subject: str
    address: str
    path: str
    previous_address: str
    previous_path: str
    #: :data:`ROUTE_FAILOVER`, :data:`ROUTE_RESTORED` or :data:`ROUTE_MIGRATED`.
    cause: str
    at: float


#: The primary route was lost; the session moved to another live route
#: (another transport to the same address: QUIC -> μTCP fallback).
ROUTE_FAILOVER = "failover"
#: The preferred transport (or a validated route, while the primary is
#: down) works again, and the session moved back to it.
ROUTE_RESTORED = "restored"
#: The peer moved (MIGRATE or a passive address change), the new route was
#: validated by challenge and response, and the session follows it.
ROUTE_MIGRATED = "migrated"
ROUTE_CAUSES = (ROUTE_FAILOVER, ROUTE_RESTORED, ROUTE_MIGRATED)

#: What the audit log keeps: state transitions, access decisions and route
#: changes.
AuditRecord = TransitionRecord | AccessRecord | RouteRecord


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """The durable part of one persistent session (one row per peer DID)."""

    peer_did: str
    #: Where the peer was last reached (a restarted node resumes there).
    address: str | None
    path: str
    #: Our outbound stream and the next sequence number it will assign.
    out_stream: int
    next_seq: int
    #: The peer's stream and how far it was received (duplicate suppression).
    in_stream: int
    next_expected: int


@dataclass(frozen=True, slots=True)
class StoredInbound:
    """A received message the application has not taken yet."""

    stream: int
    seq: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a restarted node needs, as read back from a journal."""

    sessions: tuple[SessionRecord, ...] = ()
    #: Unacknowledged outbound messages per peer, ascending by sequence number.
    outbound: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    #: Received, not yet taken, per peer, in insertion order of their streams
    #: and ascending by sequence number within a stream.
    inbound: dict[str, list[StoredInbound]] = field(default_factory=dict)
    tickets: tuple[StoredSession, ...] = ()
    #: The private prekey state (``PrekeyStore.to_bytes``), if ever saved.
    prekeys: bytes | None = field(default=None, repr=False)
    #: The handshake replay guard: ``(key, expires)`` of INITs answered
    #: (``HandshakeReplayGuard.restore``); expired ones may be left out.
    handshake_guard: tuple[tuple[bytes, float], ...] = field(default=(), repr=False)


class Journal(Protocol):
    """Durable state, written through a buffer and made durable by commit.

    Every write method only buffers; nothing is durable before
    :meth:`commit` returns.  Implementations must apply a commit atomically
    (all of it or none of it survives a crash) and must never raise for a
    write that repeats an earlier one (idempotent upserts and deletes)."""

    def put_session(self, record: SessionRecord) -> None:
        """Insert or replace the session row for ``record.peer_did``."""
        ...

    def delete_session(self, peer_did: str) -> None:
        """Forget the session with ``peer_did`` and all its messages."""
        ...

    def put_outbound(self, peer_did: str, seq: int, payload: bytes) -> None:
        """An outbound message was queued (the stream is the session's)."""
        ...

    def ack_outbound(self, peer_did: str, below: int, ranges: tuple[tuple[int, int], ...]) -> None:
        """The peer has every outbound message with ``seq < below`` and the
        half-open ``ranges``: drop them."""
        ...

    def put_inbound(self, peer_did: str, stream: int, seq: int, payload: bytes) -> None:
        """A message of the peer's ``stream`` arrived (in order or early)."""
        ...

    def take_inbound(self, peer_did: str, stream: int, seq: int) -> None:
        """The application took every message of ``stream`` up to ``seq``."""
        ...

    def drop_inbound(self, peer_did: str, stream: int, from_seq: int) -> None:
        """Messages of ``stream`` from ``from_seq`` on will never be
        delivered (the peer started a new stream): drop them."""
        ...

    def put_ticket(self, stored: StoredSession) -> None:
        """Insert or replace the resumption ticket for ``stored.peer_did``."""
        ...

    def delete_ticket(self, peer_did: str) -> None: ...

    def put_prekeys(self, state: bytes) -> None:
        """The private prekey state changed (a one-time prekey was spent,
        or new ones were made)."""
        ...

    def remember_init(self, key: bytes, expires: float, now: float) -> None:
        """The handshake replay guard accepted an INIT (``key``: its DID and
        ephemeral key) that stays fresh until ``expires``; entries expired
        at ``now`` may be deleted.  Committed before the RESPONSE leaves, so
        a restarted responder still refuses a replay of that INIT."""
        ...

    def append_audit(self, record: AuditRecord) -> None:
        """One entry for the audit log (a state transition or an access
        decision); the store chains it to the entry before (BLAKE3)."""
        ...

    def commit(self) -> None:
        """Make every buffered write durable against a process crash,
        atomically."""
        ...

    def sync(self) -> None:
        """The barrier: every commit so far survives power loss once this
        returns (with ``durability="process"``: does nothing).  Cheap when
        nothing was committed since the last barrier."""
        ...

    def load(self) -> Snapshot:
        """Read back what was committed (uncommitted writes are not seen)."""
        ...


class PersistenceOwner(Protocol[S_contra]):
    """What persistence needs of the session's owner (the manager)."""

    def dirty(self, session: S_contra, /) -> None:
        """``session``'s durable row changed: write it at the next commit."""
        ...


class PersistencePort(Protocol):
    """The fields of a session that persistence reads and sets."""

    peer_did: str
    path: str
    journal: Journal | None

    @property
    def address(self) -> str | None: ...

    @property
    def inbound(self) -> Inbound: ...

    @property
    def outbound(self) -> Outbound: ...

    @property
    def owner(self) -> PersistenceOwner[Self]: ...


def record_of(session: PersistencePort) -> SessionRecord:
    """The durable part of ``session`` (what the store keeps)."""
    return SessionRecord(
        peer_did=session.peer_did,
        address=session.address,
        path=session.path,
        out_stream=session.outbound.stream,
        next_seq=session.outbound.next_seq,
        in_stream=session.inbound.stream,
        next_expected=session.inbound.next_expected,
    )


def attach(session: PersistencePort, journal: Journal) -> None:
    """Make ``session`` durable: every kept inbound message, and every
    inbound message abandoned for a new stream, is written through."""
    session.journal = journal
    peer, owner = session.peer_did, session.owner

    def keep(stream: int, seq: int, payload: bytes) -> None:
        journal.put_inbound(peer, stream, seq, payload)
        owner.dirty(session)

    def drop(stream: int, from_seq: int) -> None:
        journal.drop_inbound(peer, stream, from_seq)
        owner.dirty(session)

    session.inbound.keep = keep
    session.inbound.drop = drop
