"""An in-memory store with the SQLite store's interface and behaviour.

For tests and for nodes that want no disk.  Writes are buffered exactly as
in :class:`~l2session.store.sqlite.SqliteStore` and applied only by
:meth:`commit`.  Two kinds of crash can be played:

* :meth:`crash` throws away what was not committed, which is what a killed
  process loses;
* :meth:`power_cut` also throws away every commit no barrier
  (:meth:`sync`) covered, which is what a power cut may lose: the disk
  keeps what was fsynced, and of the rest at most what the operating system
  happened to write back first (``keep_unsynced`` commits, in order --
  SQLite's WAL recovers a prefix of the commits).

So a test can "kill" or "power off" a node, build a new one on the same
store and check that nothing promised was lost or repeated.  With
``durability="process"`` the barrier does nothing, so a power cut may take
back any commit not yet written back: the risk that mode accepts
(store/durability.py).  The disk is modelled as writing back on its own
once ``writeback_after`` commits are waiting (as SQLite's checkpoints and
the kernel's flusher do), which keeps the model's memory bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from l2session.core.lifecycle.persistence import SessionRecord, Snapshot, StoredInbound
from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.states import TransitionRecord
from l2session.crypto.handshake_guard import DEFAULT_MAX_ENTRIES
from l2session.errors import ConfigError
from l2session.membrane import audit
from l2session.membrane.audit import AuditEntry, AuditReport
from l2session.store.buffer import Batch, WriteBuffer, acked
from l2session.store.durability import Durability, check_durability
from l2session.store.federation import MemoryFederation

#: The stored handshake replay guard keeps at most this many entries (the
#: newest), as the in-memory guard does.
GUARD_STORE_LIMIT: Final = DEFAULT_MAX_ENTRIES

#: Unsynced commits after which the modelled disk writes the oldest back.
WRITEBACK_AFTER = 4_096


@dataclass(slots=True)
class _Tables:
    """What the store holds: the committed state, or the state on disk."""

    sessions: dict[str, SessionRecord] = field(default_factory=dict)
    outbound: dict[str, dict[int, bytes]] = field(default_factory=dict)
    #: Per peer: streams in first-seen order, each seq -> payload.
    inbound: dict[str, dict[int, dict[int, bytes]]] = field(default_factory=dict)
    tickets: dict[str, StoredSession] = field(default_factory=dict)
    prekeys: bytes | None = None
    audit: list[AuditEntry] = field(default_factory=list)
    trust: dict[tuple[str, str], bytes] = field(default_factory=dict)
    #: The handshake replay guard: key -> expiry.
    guard: dict[bytes, float] = field(default_factory=dict)

    def copy(self) -> _Tables:
        return _Tables(
            dict(self.sessions),
            {peer: dict(queue) for peer, queue in self.outbound.items()},
            {
                peer: {stream: dict(msgs) for stream, msgs in streams.items()}
                for peer, streams in self.inbound.items()
            },
            dict(self.tickets),
            self.prekeys,
            list(self.audit),
            dict(self.trust),
            dict(self.guard),
        )

    def apply(self, b: Batch) -> None:
        for peer in b.deleted_sessions:
            self.sessions.pop(peer, None)
            self.outbound.pop(peer, None)
            self.inbound.pop(peer, None)
        self.sessions.update(b.sessions)
        for (peer, seq), payload in b.outbound.items():
            self.outbound.setdefault(peer, {})[seq] = payload
        for peer, stream in b.streams:
            self.inbound.setdefault(peer, {}).setdefault(stream, {})
        for (peer, stream, seq), payload in b.inbound.items():
            self.inbound.setdefault(peer, {}).setdefault(stream, {})[seq] = payload
        ranges: dict[str, list[tuple[int, int]]] = {}
        for peer, start, end in b.acked_ranges:
            ranges.setdefault(peer, []).append((start, end))
        for peer in set(b.acked_below) | set(ranges):
            queue = self.outbound.get(peer)
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
                self.tickets.pop(peer, None)
            else:
                self.tickets[peer] = ticket
        if b.prekeys is not None:
            self.prekeys = b.prekeys
        if b.guard_now is not None:
            now = b.guard_now
            for key in [k for k, expires in self.guard.items() if expires < now]:
                del self.guard[key]
        self.guard.update(b.guard)
        # Bounded by count as well as by time, as the SQLite table is.
        while len(self.guard) > GUARD_STORE_LIMIT:
            del self.guard[next(iter(self.guard))]
        if b.audit:
            last = self.audit[-1] if self.audit else None
            self.audit.extend(
                audit.chain(
                    b.audit,
                    0 if last is None else last.id,
                    audit.GENESIS if last is None else last.digest,
                )
            )
        self.trust.update(b.trust)

    def _trim(self, peer: str, stream: int, gone: Callable[[int], bool]) -> None:
        streams = self.inbound.get(peer)
        messages = streams.get(stream) if streams else None
        if streams is None or messages is None:
            return
        for seq in [s for s in messages if gone(s)]:
            del messages[seq]
        if not messages:
            del streams[stream]


class MemoryStore(WriteBuffer):
    """A :class:`~l2session.core.lifecycle.persistence.Journal` kept in dictionaries."""

    __slots__ = (
        "_disk",
        "_durability",
        "_live",
        "_unsynced",
        "_writeback",
        "commits",
        "federation",
        "syncs",
    )

    def __init__(
        self, *, durability: Durability = "power", writeback_after: int = WRITEBACK_AFTER
    ) -> None:
        super().__init__()
        self._durability = check_durability(durability)
        if type(writeback_after) is not int or writeback_after < 1:
            raise ConfigError(f"writeback_after must be an int >= 1, got {writeback_after!r}")
        self._writeback = writeback_after
        #: What was committed (what a running node and a process crash see).
        self._live = _Tables()
        #: What the modelled disk holds: every barrier-covered commit.
        self._disk = _Tables()
        #: Commits since the last barrier, oldest first (applied to _live).
        self._unsynced: list[Batch] = []
        #: Commits that wrote something (tests check group commit with it).
        self.commits = 0
        #: Barriers that had commits to cover (what would be fsyncs).
        self.syncs = 0
        #: Federated sessions' records (store/federation.py; written at
        #: once, so not part of the modelled disk's write-back).
        self.federation = MemoryFederation()

    @property
    def durability(self) -> Durability:
        return self._durability

    @property
    def unsynced(self) -> int:
        """Commits a power cut may take back now."""
        return len(self._unsynced)

    def commit(self) -> None:
        batch = self.take()
        if batch:
            self._live.apply(batch)
            self._unsynced.append(batch)
            self.commits += 1
            if len(self._unsynced) > self._writeback:
                self._disk.apply(self._unsynced.pop(0))

    def sync(self) -> None:
        """The barrier: every commit so far is on the modelled disk (with
        ``durability="process"``: nothing happens)."""
        if not self._unsynced or self._durability == "process":
            return
        for batch in self._unsynced:
            self._disk.apply(batch)
        self._unsynced.clear()
        self.syncs += 1

    def writeback(self) -> None:
        """The modelled disk writes back every commit on its own (what a
        checkpoint or the kernel's flusher does); not a barrier."""
        for batch in self._unsynced:
            self._disk.apply(batch)
        self._unsynced.clear()

    def crash(self) -> None:
        """Lose every uncommitted write, as a killed process would."""
        self.discard()

    def power_cut(self, keep_unsynced: int = 0) -> None:
        """Lose what a power cut may lose: every uncommitted write and every
        commit since the last barrier, except the first ``keep_unsynced`` of
        those (written back before the power went)."""
        if type(keep_unsynced) is not int or keep_unsynced < 0:
            raise ConfigError(f"keep_unsynced must be an int >= 0, got {keep_unsynced!r}")
        self.discard()
        for batch in self._unsynced[:keep_unsynced]:
            self._disk.apply(batch)
        self._unsynced.clear()
        self._live = self._disk.copy()

    def load(self) -> Snapshot:
        live = self._live
        return Snapshot(
            sessions=tuple(live.sessions.values()),
            outbound={
                peer: sorted(queue.items()) for peer, queue in live.outbound.items() if queue
            },
            inbound={
                peer: [
                    StoredInbound(stream, seq, payload)
                    for stream, messages in streams.items()
                    for seq, payload in sorted(messages.items())
                ]
                for peer, streams in live.inbound.items()
                if streams
            },
            tickets=tuple(live.tickets.values()),
            prekeys=live.prekeys,
            handshake_guard=tuple(live.guard.items()),
        )

    def audit_trail(self, limit: int | None = None) -> list[TransitionRecord]:
        """Committed transitions, oldest first; with ``limit``, the last
        ``limit`` of them."""
        _check_limit(limit)
        trail = [r for e in self._live.audit if isinstance(r := e.record(), TransitionRecord)]
        if limit is None:
            return trail
        return trail[-limit:] if limit else []  # all of it when it holds fewer

    def audit_log(self, limit: int | None = None) -> list[AuditEntry]:
        """Committed audit entries (every kind), oldest first; with
        ``limit``, the last ``limit`` of them."""
        _check_limit(limit)
        if limit is None:
            return list(self._live.audit)
        return self._live.audit[-limit:] if limit else []  # all of it when it holds fewer

    def verify_audit(self) -> AuditReport:
        """Check the audit log's hash chain (membrane/audit.py)."""
        return audit.verify(self._live.audit)

    def trust_statements(self) -> list[bytes]:
        """Every committed trust statement, as stored by ``put_trust``."""
        return list(self._live.trust.values())


def _check_limit(limit: object) -> None:
    if limit is not None and (type(limit) is not int or limit < 0):
        raise ConfigError(f"limit must be None or an int >= 0, got {limit!r}")
