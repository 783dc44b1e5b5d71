"""What a node keeps on disk: its store, identity and private prekeys.

A node given a path owns the SQLite file: it takes an exclusive lock on
``<file>.lock`` before opening it (two nodes on one store would resume the
same sessions from two places and confuse every peer), creates an identity
on first use, and closes the file when it stops.  A store object passed in
is used as is and left open.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from l2session.crypto.handshake_guard import HandshakeReplayGuard
from l2session.crypto.rng import RandomSource
from l2session.errors import StoreCorrupt, StoreLocked, StoreNotFound
from l2session.identity.identity import Identity
from l2session.identity.prekeys import PrekeyStore
from l2session.store.durability import Durability
from l2session.store.files import make_private_dirs
from l2session.store.memory import MemoryStore
from l2session.store.sqlite import SqliteStore


class NodeStorage:
    """Opens (and locks) the store, loads or creates identity and prekeys."""

    def __init__(
        self,
        store: str | Path | SqliteStore | MemoryStore | None,
        durability: Durability = "power",
        *,
        create_identity: bool = True,
    ) -> None:
        self._arg = store
        #: For a store opened from a path (store/durability.py).
        self._durability = durability
        self.create_identity = create_identity
        self.store: SqliteStore | MemoryStore | None = None
        self._lock_fd: int | None = None

    def open(self) -> SqliteStore | MemoryStore | None:
        arg = self._arg
        if not isinstance(arg, str | Path):
            self.store = arg
            return arg
        path = Path(arg)
        make_private_dirs(path.parent)
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size == 0:
                # Not a store this code left (it writes the schema at once):
                # opening it would silently make a new, empty store.
                raise StoreCorrupt(
                    f"{path} is empty (0 bytes), not a store: restore it from a backup, "
                    "or move it away and create a new identity with: l2session init"
                )
        self._lock(path)
        try:
            self.store = SqliteStore.open(path, durability=self._durability)
        except BaseException:
            self._unlock()
            raise
        return self.store

    def _lock(self, path: Path) -> None:
        lock = path.with_name(path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLocked(
                f"{path} is in use by another running node (lock {lock}); "
                "stop that node first, or give this one its own store"
            ) from None
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    def close(self) -> None:
        """Close a store this node opened and release its lock."""
        try:
            if isinstance(self._arg, str | Path) and isinstance(self.store, SqliteStore):
                self.store.close()
        finally:
            self.store = None
            self._unlock()

    def identity(
        self, given: Identity | None, passphrase: str | None, rng: RandomSource
    ) -> Identity:
        """``given``, else the stored one, else a new one (saved in a SQLite
        store, so the node keeps its DID across restarts)."""
        if given is not None:
            return given
        store = self.store
        if isinstance(store, SqliteStore):
            try:
                return store.load_identity(passphrase)
            except StoreNotFound:
                if not self.create_identity:
                    raise StoreNotFound(
                        f"no identity in {store.path}: create one with: l2session init"
                    ) from None
                identity = Identity.generate(rng)
                store.save_identity(identity, passphrase)
                return identity
        return Identity.generate(rng)

    def replay_guard(self, now: float, max_skew: float) -> HandshakeReplayGuard:
        """The handshake replay guard with the INITs answered before a
        restart that are still fresh (a captured INIT replayed to the
        restarted node is refused)."""
        guard = HandshakeReplayGuard(max_skew=max_skew)
        store = self.store
        if isinstance(store, SqliteStore):
            guard.restore(store.load_handshake_guard(), now)
        elif isinstance(store, MemoryStore):
            guard.restore(store.load().handshake_guard, now)
        return guard

    def prekeys(self, identity: Identity, rng: RandomSource, now: float) -> PrekeyStore:
        """The committed private prekeys (topped up), or a fresh set."""
        store = self.store
        prekeys = None
        if isinstance(store, SqliteStore):
            prekeys = store.load_prekeys(identity)
        elif isinstance(store, MemoryStore):
            state = store.load().prekeys
            prekeys = None if state is None else PrekeyStore.from_bytes(state, identity)
        changed = False
        if prekeys is None:
            prekeys = PrekeyStore.create(identity, rng=rng, now=now)
            changed = True
        elif prekeys.maintain(rng=rng, now=now):
            changed = True
        if changed and store is not None:
            store.put_prekeys(prekeys.to_bytes())
            store.commit()
            store.sync()
        return prekeys
