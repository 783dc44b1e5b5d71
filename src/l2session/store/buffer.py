"""The write buffer both stores share: coalesce until commit (group commit).

Between two commits the core may report thousands of changes; most cancel
or overwrite each other.  A session row written forty times is written
once; a message received and taken by the application before the commit is
never written at all (only the stream's high-water mark moves); a run of
acknowledgements becomes one range delete per peer.

Order within one commit is fixed so that coalescing cannot change meaning:
deleted sessions first (a delete discards what was buffered for that peer
before it), then puts, then acknowledgements and hand-offs (which may
remove rows put in the same batch), then drops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from l2session.core.lifecycle.persistence import AuditRecord, SessionRecord
from l2session.core.lifecycle.resumption import StoredSession

Ranges = tuple[tuple[int, int], ...]


@dataclass(slots=True)
class Batch:
    """One commit's worth of coalesced writes."""

    deleted_sessions: set[str] = field(default_factory=set)
    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    outbound: dict[tuple[str, int], bytes] = field(default_factory=dict)
    #: Per peer: the highest cumulative acknowledgement, and SACK ranges.
    acked_below: dict[str, int] = field(default_factory=dict)
    acked_ranges: list[tuple[str, int, int]] = field(default_factory=list)
    inbound: dict[tuple[str, int, int], bytes] = field(default_factory=dict)
    #: Per (peer, stream), in the order of their first message in this
    #: batch, even one taken before the commit: a stream's place in the
    #: snapshot is when it first got a message.
    streams: dict[tuple[str, int], None] = field(default_factory=dict)
    #: Per (peer, stream): everything up to this seq was taken.
    taken: dict[tuple[str, int], int] = field(default_factory=dict)
    #: Per (peer, stream): messages from this seq on are dropped.
    dropped: dict[tuple[str, int], int] = field(default_factory=dict)
    tickets: dict[str, StoredSession | None] = field(default_factory=dict)
    prekeys: bytes | None = None
    #: Handshake replay guard entries: key -> expiry; and the latest
    #: ``now`` they were written at (older entries may be deleted).
    guard: dict[bytes, float] = field(default_factory=dict)
    guard_now: float | None = None
    audit: list[AuditRecord] = field(default_factory=list)
    #: Per (issuer, subject): the newest signed trust statement (QVL).
    trust: dict[tuple[str, str], bytes] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.deleted_sessions
            or self.sessions
            or self.outbound
            or self.acked_below
            or self.acked_ranges
            or self.inbound
            or self.streams
            or self.taken
            or self.dropped
            or self.tickets
            or self.trust
            or self.prekeys is not None
            or self.guard
            or self.audit
        )


class WriteBuffer:
    """The :class:`~l2session.core.lifecycle.persistence.Journal` write methods,
    buffered into a :class:`Batch`; a store's ``commit`` applies
    :meth:`take` atomically."""

    __slots__ = ("_batch",)

    def __init__(self) -> None:
        self._batch = Batch()

    def take(self) -> Batch:
        """The writes buffered so far (the buffer starts empty again)."""
        batch, self._batch = self._batch, Batch()
        return batch

    def restore(self, batch: Batch) -> None:
        """Put back ``batch`` after its commit failed, so that the next
        commit retries it.  Only right after :meth:`take`: a commit is
        synchronous, so nothing can have been buffered in between."""
        if self._batch:
            raise RuntimeError("restore() after new writes were buffered would reorder them")
        self._batch = batch

    def discard(self) -> None:
        """Forget uncommitted writes (what a crash does)."""
        self._batch = Batch()

    @property
    def pending(self) -> bool:
        return bool(self._batch)

    def put_session(self, record: SessionRecord) -> None:
        self._batch.sessions[record.peer_did] = record

    def delete_session(self, peer_did: str) -> None:
        b = self._batch
        b.deleted_sessions.add(peer_did)
        b.sessions.pop(peer_did, None)
        b.acked_below.pop(peer_did, None)
        b.acked_ranges = [r for r in b.acked_ranges if r[0] != peer_did]
        for key in [k for k in b.outbound if k[0] == peer_did]:
            del b.outbound[key]
        for key3 in [k for k in b.inbound if k[0] == peer_did]:
            del b.inbound[key3]
        for key in [k for k in b.streams if k[0] == peer_did]:
            del b.streams[key]
        for key in [k for k in b.taken if k[0] == peer_did]:
            del b.taken[key]
        for key in [k for k in b.dropped if k[0] == peer_did]:
            del b.dropped[key]

    def put_outbound(self, peer_did: str, seq: int, payload: bytes) -> None:
        self._batch.outbound[peer_did, seq] = payload

    def ack_outbound(self, peer_did: str, below: int, ranges: Ranges) -> None:
        b = self._batch
        if below > b.acked_below.get(peer_did, -1):
            b.acked_below[peer_did] = below
        for start, end in ranges:
            b.acked_ranges.append((peer_did, start, end))

    def put_inbound(self, peer_did: str, stream: int, seq: int, payload: bytes) -> None:
        self._batch.inbound[peer_did, stream, seq] = payload
        self._batch.streams.setdefault((peer_did, stream))

    def take_inbound(self, peer_did: str, stream: int, seq: int) -> None:
        b = self._batch
        key = (peer_did, stream)
        if seq > b.taken.get(key, -1):
            b.taken[key] = seq
        # Received and taken within one commit: never written at all.
        b.inbound.pop((peer_did, stream, seq), None)

    def drop_inbound(self, peer_did: str, stream: int, from_seq: int) -> None:
        b = self._batch
        key = (peer_did, stream)
        if from_seq < b.dropped.get(key, from_seq + 1):
            b.dropped[key] = from_seq
        for k in [k for k in b.inbound if k[0] == peer_did and k[1] == stream and k[2] >= from_seq]:
            del b.inbound[k]

    def put_ticket(self, stored: StoredSession) -> None:
        self._batch.tickets[stored.peer_did] = stored

    def delete_ticket(self, peer_did: str) -> None:
        self._batch.tickets[peer_did] = None

    def put_prekeys(self, state: bytes) -> None:
        self._batch.prekeys = bytes(state)

    def remember_init(self, key: bytes, expires: float, now: float) -> None:
        b = self._batch
        b.guard[bytes(key)] = float(expires)
        b.guard_now = now if b.guard_now is None else max(b.guard_now, now)

    def append_audit(self, record: AuditRecord) -> None:
        self._batch.audit.append(record)

    def put_trust(self, issuer: str, subject: str, statement: bytes) -> None:
        """Keep ``statement`` (``TrustStatement.to_bytes()``) as the edge
        from ``issuer`` to ``subject``, replacing the one held."""
        self._batch.trust[(issuer, subject)] = bytes(statement)


def acked(seq: int, below: int, ranges: list[tuple[int, int]]) -> bool:
    """Whether ``seq`` is covered by a cumulative ack and SACK ranges."""
    return seq < below or any(start <= seq < end for start, end in ranges)
