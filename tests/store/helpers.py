"""Store test helpers: either store behind one interface, sample records,
and file checks.

A :class:`Node` is a store plus the way its process is killed and
restarted: for the in-memory store that is ``crash()`` on the same object
(which stands for the disk), for SQLite it is ``crash()`` and a fresh
``SqliteStore.open`` of the same file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from l2session.core.lifecycle.persistence import SessionRecord
from l2session.core.lifecycle.resumption import StoredSession
from l2session.core.states import State, TransitionRecord, Trigger
from l2session.store.memory import MemoryStore
from l2session.store.sqlite import SqliteStore

Store = MemoryStore | SqliteStore

PEER_A = "did:key:z6MkhjqttrqupMhwqgYFsejwfwoLxpw2pU7u67xdUhYGADAR"
PEER_B = "did:key:z6MkrATWjnk4jPFYqudpsTounphaUUcGUPjyxV3cb7fpuSjy"
PEER_C = "did:key:z6MkgKvsSbUpvRPauPc586j9pdXwztcPya4x464uWLXh64yA"
U64_MAX = 2**64 - 1


class Node:
    """A store, and the restart of the process that uses it."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind = kind
        self.path = path
        self.store: Store = MemoryStore() if kind == "memory" else SqliteStore.open(path)

    def restart(self) -> Store:
        """Kill the process (uncommitted writes are lost) and start again."""
        self.store.crash()
        if isinstance(self.store, SqliteStore):
            self.store = SqliteStore.open(self.path)
        return self.store

    def close(self) -> None:
        if isinstance(self.store, SqliteStore):
            self.store.crash()


def session(peer: str = PEER_A, *, next_seq: int = 0, address: str | None = "a") -> SessionRecord:
    return SessionRecord(peer, address, "quic", 7, next_seq, 9, 0)


def ticket(
    peer: str = PEER_A, *, secret: bytes = bytes(32), issued_ms: int = 1000
) -> StoredSession:
    return StoredSession(
        local_did=PEER_C,
        peer_did=peer,
        peer_signing_key=bytes(range(32)),
        resumption_secret=secret,
        lineage=bytes(32),
        pq_keyed_at=1_800_000_000.0,
        issued_at=issued_ms / 1000,
        out_stream=1,
        in_stream=U64_MAX,
    )


def transition(n: int, subject: str = PEER_A) -> TransitionRecord:
    target = None if n % 3 == 2 else State.ESTABLISHED
    return TransitionRecord(subject, State.IDLE, target, Trigger.RETRY, f"step {n}", n / 8)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def companions(path: Path) -> list[str]:
    """SQLite's files next to ``path`` that exist."""
    return [s for s in ("-wal", "-shm", "-journal") if os.path.exists(f"{path}{s}")]
