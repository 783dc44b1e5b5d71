"""The node's durable store: one SQLite file in WAL mode.

:class:`SqliteStore` is a :class:`~l2session.core.lifecycle.persistence.Journal` with
the semantics of :class:`~l2session.store.memory.MemoryStore` (the tests run
one conformance suite, and a model-based test, over both).  Writes are
buffered and coalesced by :class:`~l2session.store.buffer.WriteBuffer`;
:meth:`SqliteStore.commit` applies the batch in one transaction, so either
all of it survives a crash or none of it does.  A commit with nothing
buffered does not touch the file.
How a batch maps onto the tables (the statements and their order) is
:class:`~l2session.store.sqlite_writes.BatchWriter`'s; this module opens
the file, runs the transaction and the barrier, and reads everything back.

Durability (docs/STORE.md): WAL mode with ``synchronous=NORMAL``, so a
commit writes its pages to the ``-wal`` file without an fsync: it survives
the process being killed (the pages are in the operating system's page
cache), not yet a power cut.  :meth:`SqliteStore.sync` is the barrier the
core raises before a promise leaves (store/durability.py): with the default
``durability="power"`` it fsyncs the ``-wal`` file once, which makes every
commit before it survive power loss (the WAL is the only place a
committed, uncheckpointed page lives, and fsync covers the whole file),
however many commits that is (group commit).  ``durability="process"``
makes the barrier a no-op: power loss may then take back the commits since
the last checkpoint, though never corrupt the file.  ``synchronous="full"``
fsyncs the WAL at every commit instead (the barrier then finds nothing to
do).  Saving the identity always runs with ``FULL``: losing a node's
identity is not an acceptable outcome of a power cut.

Before SQLite writes a byte, :mod:`l2session.store.files` checks the file
(permissions, header, application id, schema version, ``quick_check``), so
a foreign, newer or damaged file is refused and left exactly as it was.
Later SQLite failures (disk full, I/O error, corruption) become
:class:`~l2session.errors.StoreError` subclasses naming the file; a failed
commit leaves its writes buffered, so the next commit retries them.

One store is used by one thread at a time (the runtime serialises calls);
it may be handed between threads, for example to an executor.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Final, Self
from urllib.parse import quote

from l2session.core.lifecycle.persistence import SessionRecord, Snapshot, StoredInbound
from l2session.core.lifecycle.resumption import StoredSession
from l2session.errors import (
    ConfigError,
    L2SessionError,
    StoreCorrupt,
    StoreError,
    StoreIOError,
    StoreNotFound,
)
from l2session.identity.identity import Identity
from l2session.identity.keyfile import DEFAULT_SCRYPT_N, decode_identity, encode_identity
from l2session.identity.prekeys import PrekeyPolicy, PrekeyStore
from l2session.store import files, schema
from l2session.store.audit_reads import AuditReads
from l2session.store.buffer import WriteBuffer
from l2session.store.checkpoint import Checkpointer
from l2session.store.durability import Durability, check_durability
from l2session.store.federation import SqliteFederation
from l2session.store.files import default_store_path
from l2session.store.sqlite_writes import GUARD_STORE_LIMIT, BatchWriter

#: ``synchronous=`` values accepted by :meth:`SqliteStore.open`.
SYNCHRONOUS: Final = {"normal": "NORMAL", "full": "FULL"}
#: How long a commit waits for another process's write lock (seconds).
BUSY_TIMEOUT: Final = 5.0
#: After a large transaction, the WAL file is truncated back to this size.
WAL_SIZE_LIMIT: Final = 8 * 1024 * 1024

_OFF: Final = schema.U64_OFFSET

_LOAD_SESSIONS: Final = (
    "SELECT p.did, s.address, s.path, s.out_stream, s.next_seq, s.in_stream, s.next_expected"
    " FROM sessions s JOIN peers p ON p.id = s.peer ORDER BY s.id"
)
_LOAD_OUTBOUND: Final = (
    "SELECT p.did, o.id, o.messages FROM outbound_batches o JOIN peers p ON p.id = o.peer"
    " ORDER BY o.peer, o.id"
)
_LOAD_ACKED: Final = (
    "SELECT p.did, a.start, a.stop, a.upto FROM outbound_acked a JOIN peers p ON p.id = a.peer"
)
_LOAD_INBOUND: Final = (
    "SELECT p.did, i.stream, i.seq, i.payload FROM inbound i"
    " JOIN inbound_streams s ON s.peer = i.peer AND s.stream = i.stream"
    " JOIN peers p ON p.id = i.peer ORDER BY s.id, i.seq"
)
_LOAD_TICKETS: Final = "SELECT ticket FROM tickets ORDER BY id"


class _KernelRandom:
    """Salt and nonce for an encrypted identity: the kernel CSPRNG.  (The
    runtime's ``SystemRandom`` is the same, but sits above this layer.)"""

    __slots__ = ()

    def random_bytes(self, n: int) -> bytes:
        return os.urandom(n)


def _datasync(fd: int) -> None:
    """fdatasync where the platform has it (SQLite's own choice on Linux):
    the data and the file size, not the modification time."""
    sync = getattr(os, "fdatasync", os.fsync)
    sync(fd)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SqliteStore(AuditReads, WriteBuffer):
    """The durable :class:`~l2session.core.lifecycle.persistence.Journal` of a node,
    plus its identity and prekeys.  Make one with :meth:`open`."""

    __slots__ = (
        "_changes",
        "_checkpointer",
        "_conn",
        "_dir_synced",
        "_durability",
        "_full",
        "_path",
        "_sync_error",
        "_unsynced",
        "_writer",
        "commits",
        "federation",
        "syncs",
    )

    def __init__(
        self, conn: sqlite3.Connection, path: Path, durability: Durability = "power"
    ) -> None:
        super().__init__()
        self._durability = check_durability(durability)
        #: synchronous=FULL: SQLite fsyncs every commit itself.
        self._full = conn.execute("PRAGMA synchronous").fetchone()[0] >= 2
        #: Commits since the last barrier (a power cut may take them back).
        self._unsynced = 0
        #: Barriers that fsynced (tests and benchmarks read it).
        self.syncs = 0
        #: The directory entry of the -wal file is fsynced once per handle.
        self._dir_synced = False
        #: Set when an fsync failed: the page cache may have dropped what it
        #: could not write, so no later fsync can vouch for it (PostgreSQL's
        #: "fsyncgate" lesson): every later barrier fails too.
        self._sync_error: str | None = None
        self._conn: sqlite3.Connection | None = conn
        self._path = path
        #: Writes each batch into the tables (store/sqlite_writes.py).
        self._writer = BatchWriter()
        #: Commits that wrote something (tests check group commit with it).
        self.commits = 0
        #: WAL checkpoints run off the commit path (see store/checkpoint.py).
        self._checkpointer = Checkpointer(f"file:{quote(str(path))}?mode=rw")
        self._changes = conn.total_changes
        #: Federated sessions' records (store/federation.py).
        self.federation = SqliteFederation(self._connection, self._federation_wrote)

    # ------------------------------------------------------------------
    # opening and closing

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        synchronous: str = "normal",
        durability: Durability = "power",
    ) -> SqliteStore:
        """Open (or create) the database at ``path``, by default
        :func:`~l2session.store.files.default_store_path`.

        ``durability="power"`` (the default): every barrier (:meth:`sync`,
        raised by the core before a packet leaves and before ``receive``
        returns) fsyncs, so no acknowledgement, consumed ticket or one-time
        prekey, or hand-off to the application is ever taken back, not even
        by a power cut.  ``durability="process"`` (opt-in) skips those
        fsyncs: it survives process crashes, but **a power cut may lose the
        commits since the last checkpoint although the peer was told: the
        messages it acknowledged are then lost for good, and a consumed
        ticket or one-time prekey can be accepted a second time**
        (store/durability.py, docs/STORE.md).

        A new file and its directories are created private (0600, 0700); an
        existing one must be a regular file of ours with mode 0600.  A file
        of an older schema version is upgraded in one transaction.  Raises a
        :class:`~l2session.errors.StoreError` subclass naming the file.
        """
        level = SYNCHRONOUS.get(synchronous) if isinstance(synchronous, str) else None
        if level is None:
            raise ConfigError(f"synchronous must be 'normal' or 'full', got {synchronous!r}")
        mode = check_durability(durability)
        target = Path(os.path.abspath(path if path is not None else default_store_path()))
        st, created = files.prepare(target)
        if not created:
            files.inspect(target, st)
        try:
            conn = sqlite3.connect(
                f"file:{quote(str(target))}?mode=rw",
                uri=True,
                timeout=BUSY_TIMEOUT,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise files.error_from(target, exc, "opening the database") from None
        try:
            after = os.lstat(target)
            if (after.st_dev, after.st_ino) != (st.st_dev, st.st_ino):
                raise StoreError(f"{target} was replaced while being opened; try again")
            files.initialise(conn, target)
            journal = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if journal != "wal":
                raise StoreIOError(
                    f"{target}: SQLite cannot use WAL mode there (journal mode {journal!r}). "
                    "Fix: keep the database on a local file system"
                )
            conn.execute(f"PRAGMA synchronous = {level}")
            # Checkpoints run in a background thread, not inside a commit.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT:d}")
            # Deleted rows are zeroed where that costs no extra write
            # (commit() turns it fully on when secrets are replaced).
            conn.execute("PRAGMA secure_delete = FAST")
            # Start the WAL here: the first write after opening creates the
            # -wal file and syncs its header and the directory (2-8 ms on a
            # VM disk).  In the first commit that cost lands on whatever
            # waits for it -- after a restart, the RESUME (docs/NETWORK.md).
            conn.execute("BEGIN IMMEDIATE")
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            conn.execute(f"PRAGMA user_version = {version:d}")
            conn.execute("COMMIT")
            # ... and the -wal file's directory entry, which the first
            # barrier (sync()) would otherwise fsync on that same path.
            if mode == "power":
                _sync_directory(target.parent)
        except sqlite3.Error as exc:
            conn.close()
            raise files.error_from(target, exc, "opening the database") from None
        except OSError as exc:
            conn.close()
            raise StoreIOError(
                f"{target}: cannot fsync its directory ({exc.strerror or exc}). "
                "Fix: check the disk and the directory's permissions"
            ) from exc
        except BaseException:
            conn.close()
            raise
        store = cls(conn, target, mode)
        store._dir_synced = mode == "power"
        return store

    @property
    def path(self) -> Path:
        return self._path

    @property
    def closed(self) -> bool:
        return self._conn is None

    @property
    def durability(self) -> Durability:
        return self._durability

    @property
    def checkpoints(self) -> int:
        """WAL checkpoints the background thread ran (each fsyncs the WAL
        and the database file)."""
        return self._checkpointer.checkpoints

    @property
    def unsynced(self) -> int:
        """Commits since the last barrier (what a power cut may take back)."""
        return self._unsynced

    def close(self) -> None:
        """Commit what is buffered and raise a barrier, then close (a
        second close does nothing)."""
        if self._conn is None:
            return
        try:
            self.commit()
            self.sync()
        finally:
            self._checkpointer.stop()
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def crash(self) -> None:
        """Close *without* committing: what a killed process loses (the
        buffered writes) is lost, what it committed is on disk."""
        self.discard()
        self._checkpointer.stop()
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self._path}: the store is closed")
        return self._conn

    def __repr__(self) -> str:
        return f"SqliteStore({str(self._path)!r}{', closed' if self.closed else ''})"

    # ------------------------------------------------------------------
    # the journal

    def commit(self) -> None:
        """Apply every buffered write in one transaction.  On failure nothing
        of it is written and it stays buffered: commit again to retry."""
        if not self.pending:
            return
        conn = self._connection()
        batch = self.take()
        added: list[str] = []
        # Replacing a ticket or the prekeys frees secrets (a spent one-time
        # prekey, a used resumption secret): zero them in the file.
        secrets = bool(batch.tickets) or batch.prekeys is not None
        try:
            if secrets:
                conn.execute("PRAGMA secure_delete = ON")
            conn.execute("BEGIN IMMEDIATE")
            self._writer.apply(conn, batch, added)
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            self._writer.forget(added)
            self.restore(batch)
            if isinstance(exc, sqlite3.Error):
                raise files.error_from(self._path, exc, "committing") from exc
            if isinstance(exc, OverflowError):
                raise StoreError(
                    f"{self._path}: cannot commit: a stream, sequence number or position "
                    "is not an unsigned 64-bit integer"
                ) from exc
            raise
        finally:
            if secrets:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA secure_delete = FAST")
        self.commits += 1
        if not self._full:
            self._unsynced += 1
        # About what the commit appended to the WAL: payloads plus a row's
        # worth of page space per changed row.
        changes = conn.total_changes
        nbytes = 128 * max(0, changes - self._changes)
        self._changes = changes
        nbytes += sum(map(len, batch.outbound.values())) + sum(map(len, batch.inbound.values()))
        self._checkpointer.wrote(nbytes, conn, Path(f"{self._path}-wal"))

    def _federation_wrote(self) -> None:
        """A federation table committed (store/federation.py): the next
        barrier covers it too."""
        self._unsynced += 1

    def sync(self) -> None:
        """The barrier: once this returns, every commit so far survives
        power loss.  One ``fdatasync`` of the ``-wal`` file covers all of
        them (and, once per handle, an fsync of the directory, so the
        ``-wal`` file's own entry is on disk).  Nothing committed since the
        last barrier: no system call at all.  ``durability="process"``:
        does nothing.  A failed fsync raises
        :class:`~l2session.errors.StoreIOError`, now and at every later
        barrier of this handle (reopen the store: SQLite recovers from the
        file what reached the disk)."""
        if self._sync_error is not None:
            raise StoreIOError(self._sync_error)
        if not self._unsynced or self._durability == "process":
            return
        self._connection()
        wal = f"{self._path}-wal"
        try:
            try:
                fd = os.open(wal, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                # No WAL (every connection closed and it was checkpointed
                # away): the commits are in the database file itself.
                fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _datasync(fd)
            finally:
                os.close(fd)
            if not self._dir_synced:
                _sync_directory(self._path.parent)
                self._dir_synced = True
        except OSError as exc:
            self._sync_error = (
                f"{self._path}: fsync failed ({exc.strerror or exc}); what was committed since "
                "the last barrier may not be on disk. Fix: check the disk, then restart the node "
                "(reopening the store recovers what reached the disk)"
            )
            raise StoreIOError(self._sync_error) from exc
        self._unsynced = 0
        self.syncs += 1

    def load(self) -> Snapshot:
        """What was committed, read in one transaction (one consistent view)."""
        with self._reading("loading") as conn:
            sessions = tuple(
                SessionRecord(did, address, path, out + _OFF, nxt + _OFF, inn + _OFF, exp + _OFF)
                for did, address, path, out, nxt, inn, exp in conn.execute(_LOAD_SESSIONS)
            )
            acked_ranges: dict[str, list[tuple[int, int, int]]] = {}
            for did, start, stop, upto in conn.execute(_LOAD_ACKED):
                acked_ranges.setdefault(did, []).append((start + _OFF, stop + _OFF, upto))
            queued: dict[str, dict[int, bytes]] = {}
            for did, batch_id, blob in conn.execute(_LOAD_OUTBOUND):
                try:
                    messages = schema.decode_batch(blob)
                except ValueError as exc:
                    raise StoreCorrupt(f"{self._path}: an outbound batch is damaged") from exc
                kept = queued.setdefault(did, {})
                done = [(a, b) for a, b, upto in acked_ranges.get(did, ()) if batch_id <= upto]
                for seq, payload in messages:
                    if not any(start <= seq < stop for start, stop in done):
                        kept[seq] = payload  # a later batch's copy wins
            outbound = {
                did: sorted(messages.items()) for did, messages in queued.items() if messages
            }
            inbound: dict[str, list[StoredInbound]] = {}
            for did, stream, seq, payload in conn.execute(_LOAD_INBOUND):
                inbound.setdefault(did, []).append(
                    StoredInbound(stream + _OFF, seq + _OFF, payload)
                )
            tickets = tuple(
                StoredSession.from_bytes(ticket) for (ticket,) in conn.execute(_LOAD_TICKETS)
            )
            row = conn.execute("SELECT state FROM prekeys").fetchone()
            guard = tuple(
                (bytes(key), float(expires))
                for key, expires in conn.execute("SELECT key, expires FROM handshake_guard")
            )
        return Snapshot(
            sessions, outbound, inbound, tickets, None if row is None else row[0], guard
        )

    @contextlib.contextmanager
    def _reading(self, doing: str) -> Iterator[sqlite3.Connection]:
        """A read transaction; SQLite failures and undecodable rows become
        typed errors naming the file."""
        conn = self._connection()
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise files.error_from(self._path, exc, doing) from None
        except (L2SessionError, ValueError, TypeError) as exc:
            raise StoreCorrupt(
                f"{self._path}: a stored record cannot be read ({exc}) while {doing}. "
                "Fix: restore the database from a backup"
            ) from None

    # ------------------------------------------------------------------
    # identity and prekeys

    def save_identity(
        self,
        identity: Identity,
        passphrase: str | None = None,
        *,
        overwrite: bool = False,
        scrypt_n: int = DEFAULT_SCRYPT_N,
    ) -> None:
        """Store ``identity`` in the key-file format (scrypt +
        ChaCha20-Poly1305 under ``passphrase``, or plaintext protected by
        the file's mode 0600), durably at once (an fsync, whatever
        ``synchronous`` is).  An identity already stored is replaced only
        with ``overwrite=True``: replacing it loses that identity for good."""
        data = encode_identity(
            identity, passphrase=passphrase, rng=_KernelRandom(), scrypt_n=scrypt_n
        )
        conn = self._connection()
        level = conn.execute("PRAGMA synchronous").fetchone()[0]
        try:
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA secure_delete = ON")
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT did FROM identity").fetchone()
                if row is not None and not overwrite:
                    raise StoreError(
                        f"{self._path} already holds the identity {row[0]}; refusing to replace "
                        "it (that would lose it). Fix: pass overwrite=True if that is meant"
                    )
                conn.execute(
                    "INSERT INTO identity (id, did, keyfile) VALUES (1, ?, ?) ON CONFLICT (id)"
                    " DO UPDATE SET did = excluded.did, keyfile = excluded.keyfile",
                    (identity.did_text, data),
                )
                conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise files.error_from(self._path, exc, "saving the identity") from None
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute(f"PRAGMA synchronous = {int(level):d}")
                conn.execute("PRAGMA secure_delete = FAST")

    def load_identity(self, passphrase: str | None = None) -> Identity:
        """The stored identity.  Raises :class:`~l2session.errors.StoreNotFound`
        if none was saved, ``PassphraseRequired``/``WrongPassphrase`` for an
        encrypted one without or with the wrong passphrase."""
        with self._reading("loading the identity") as conn:
            row = conn.execute("SELECT keyfile FROM identity").fetchone()
        if row is None:
            raise StoreNotFound(
                f"{self._path} holds no identity. Fix: create one (l2session init) "
                "or save one with save_identity()"
            )
        return decode_identity(bytes(row[0]), passphrase=passphrase, source=f"{self._path}")

    def load_handshake_guard(self) -> tuple[tuple[bytes, float], ...]:
        """The committed handshake replay guard entries ``(key, expires)``."""
        with self._reading("loading the handshake replay guard") as conn:
            return tuple(
                (bytes(key), float(expires))
                for key, expires in conn.execute("SELECT key, expires FROM handshake_guard")
            )

    def load_prekeys(
        self, identity: Identity, policy: PrekeyPolicy | None = None
    ) -> PrekeyStore | None:
        """The committed private prekeys of ``identity``, or None if never saved."""
        with self._reading("loading the prekeys") as conn:
            row = conn.execute("SELECT state FROM prekeys").fetchone()
            return None if row is None else PrekeyStore.from_bytes(row[0], identity, policy)


__all__ = ["GUARD_STORE_LIMIT", "SYNCHRONOUS", "SqliteStore", "default_store_path"]
