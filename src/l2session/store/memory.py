"""An in-memory store with the SQLite store's interface and behaviour.

For tests and for nodes that want no disk.  Writes are buffered exactly as
in :class:`~l2session.store.sqlite.SqliteStore` and applied only by
:meth:`commit`; :meth:`crash` throws away what was not committed, which is
what a killed process loses, so a test can "kill" a node, build a new one on
the same store and check that nothing was lost or repeated.
"""

from __future__ import annotations

from collections.abc import Callable

from l2session.core.persistence import SessionRecord, Snapshot, StoredInbound
from l2session.core.resumption import StoredSession
from l2session.core.states import TransitionRecord
from l2session.errors import ConfigError
from l2session.membrane import audit
from l2session.membrane.audit import AuditEntry, AuditReport
from l2session.store.buffer import Batch, WriteBuffer, acked


class MemoryStore(WriteBuffer):
    """A :class:`~l2session.core.persistence.Journal` kept in dictionaries."""

    __slots__ = (
        "_audit",
        "_inbound",
        "_outbound",
        "_prekeys",
        "_sessions",
        "_tickets",
        "_trust",
        "commits",
    )

    def __init__(self) -> None:
        super().__init__()
        self._sessions: dict[str, SessionRecord] = {}
        self._outbound: dict[str, dict[int, bytes]] = {}
        #: Per peer: streams in first-seen order, each seq -> payload.
        self._inbound: dict[str, dict[int, dict[int, bytes]]] = {}
        self._tickets: dict[str, StoredSession] = {}
        self._prekeys: bytes | None = None
        self._audit: list[AuditEntry] = []
        self._trust: dict[tuple[str, str], bytes] = {}
        #: Commits that wrote something (tests check group commit with it).
        self.commits = 0

    def commit(self) -> None:
        batch = self.take()
        if batch:
            self._apply(batch)
            self.commits += 1

    def crash(self) -> None:
        """Lose every uncommitted write, as a killed process would."""
        self.discard()

    def _apply(self, b: Batch) -> None:
        for peer in b.deleted_sessions:
            self._sessions.pop(peer, None)
            self._outbound.pop(peer, None)
            self._inbound.pop(peer, None)
        self._sessions.update(b.sessions)
        for (peer, seq), payload in b.outbound.items():
            self._outbound.setdefault(peer, {})[seq] = payload
        for peer, stream in b.streams:
            self._inbound.setdefault(peer, {}).setdefault(stream, {})
        for (peer, stream, seq), payload in b.inbound.items():
            self._inbound.setdefault(peer, {}).setdefault(stream, {})[seq] = payload
        ranges: dict[str, list[tuple[int, int]]] = {}
        for peer, start, end in b.acked_ranges:
            ranges.setdefault(peer, []).append((start, end))
        for peer in set(b.acked_below) | set(ranges):
            queue = self._outbound.get(peer)
            if queue:
                below, peer_ranges = b.acked_below.get(peer, 0), ranges.get(peer, [])
                for seq in [s for s in queue if acked(s, below, peer_ranges)]:
                    del queue[seq]
        for (peer, stream), upto in b.taken.items():
            self._trim(peer, stream, upto.__ge__)
        for (peer, stream), start in b.dropped.items():
            self._trim(peer, stream, start.__le__)
        for peer, ticket in b.tickets.items():
            if ticket is None:
                self._tickets.pop(peer, None)
            else:
                self._tickets[peer] = ticket
        if b.prekeys is not None:
            self._prekeys = b.prekeys
        if b.audit:
            last = self._audit[-1] if self._audit else None
            self._audit.extend(
                audit.chain(
                    b.audit,
                    0 if last is None else last.id,
                    audit.GENESIS if last is None else last.digest,
                )
            )
        self._trust.update(b.trust)

    def _trim(self, peer: str, stream: int, gone: Callable[[int], bool]) -> None:
        streams = self._inbound.get(peer)
        messages = streams.get(stream) if streams else None
        if streams is None or messages is None:
            return
        for seq in [s for s in messages if gone(s)]:
            del messages[seq]
        if not messages:
            del streams[stream]

    def load(self) -> Snapshot:
        return Snapshot(
            sessions=tuple(self._sessions.values()),
            outbound={
                peer: sorted(queue.items()) for peer, queue in self._outbound.items() if queue
            },
            inbound={
                peer: [
                    StoredInbound(stream, seq, payload)
                    for stream, messages in streams.items()
                    for seq, payload in sorted(messages.items())
                ]
                for peer, streams in self._inbound.items()
                if streams
            },
            tickets=tuple(self._tickets.values()),
            prekeys=self._prekeys,
        )

    def audit_trail(self, limit: int | None = None) -> list[TransitionRecord]:
        """Committed transitions, oldest first; with ``limit``, the last
        ``limit`` of them."""
        _check_limit(limit)
        trail = [r for e in self._audit if isinstance(r := e.record(), TransitionRecord)]
        if limit is None:
            return trail
        return trail[len(trail) - limit :] if limit else []

    def audit_log(self, limit: int | None = None) -> list[AuditEntry]:
        """Committed audit entries (every kind), oldest first; with
        ``limit``, the last ``limit`` of them."""
        _check_limit(limit)
        if limit is None:
            return list(self._audit)
        return self._audit[len(self._audit) - limit :] if limit else []

    def verify_audit(self) -> AuditReport:
        """Check the audit log's hash chain (membrane/audit.py)."""
        return audit.verify(self._audit)

    def trust_statements(self) -> list[bytes]:
        """Every committed trust statement, as stored by ``put_trust``."""
        return list(self._trust.values())


def _check_limit(limit: object) -> None:
    if limit is not None and (type(limit) is not int or limit < 0):
        raise ConfigError(f"limit must be None or an int >= 0, got {limit!r}")
