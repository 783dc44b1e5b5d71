"""The SQLite schema of the node database, and how older files are upgraded.

``PRAGMA application_id`` marks a file as ours (so another application's
database is recognised and left alone) and ``PRAGMA user_version`` holds the
schema version.  A new file gets the current :data:`CREATE` statements; an
older one runs every step of :data:`MIGRATIONS` from its version up, inside
the caller's single transaction, so an upgrade happens completely or not at
all.  A step is frozen once released: a later change to a table is a new
step, never an edit of an old one (tests/store/schema_v1.sql is version 1
as it was written, and the test upgrades it).

Every table is an ordinary rowid table: rowid tables with a secondary index
measured four times faster than ``WITHOUT ROWID`` for rows carrying 1 KiB
payloads, and an ``INTEGER PRIMARY KEY`` doubles as the insertion order
that :class:`~l2session.core.lifecycle.persistence.Snapshot` promises (an upsert keeps
a row's id; a row deleted and put again gets a new, larger one).  Peer DIDs
(about 56 characters) are stored once, in ``peers``; the other tables refer
to them by a small integer.

Unsigned 64-bit values (stream ids, sequence numbers) are stored *offset
binary*, ``value - 2**63``, so that the whole u64 range fits SQLite's signed
INTEGER and comparisons (``seq < below``) keep their order.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Callable, Iterable
from typing import Final

from l2session.core.states import State, TransitionRecord, Trigger
from l2session.membrane import audit
from l2session.store import federation

#: ``PRAGMA application_id``: "L2SS".
APPLICATION_ID: Final = 0x4C32_5353
#: ``PRAGMA user_version`` of files this code writes.
SCHEMA_VERSION: Final = 6

#: Offset of the stored form of unsigned 64-bit values.
U64_OFFSET: Final = 1 << 63

_V1: Final = (
    """CREATE TABLE peers (
    id INTEGER PRIMARY KEY,
    did TEXT NOT NULL UNIQUE
)""",
    """CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    peer INTEGER NOT NULL UNIQUE REFERENCES peers (id),
    address TEXT,
    path TEXT NOT NULL,
    out_stream INTEGER NOT NULL,
    next_seq INTEGER NOT NULL,
    in_stream INTEGER NOT NULL,
    next_expected INTEGER NOT NULL
)""",
    """CREATE TABLE outbound (
    peer INTEGER NOT NULL REFERENCES peers (id),
    seq INTEGER NOT NULL,
    payload BLOB NOT NULL
)""",
    "CREATE UNIQUE INDEX outbound_by_seq ON outbound (peer, seq)",
    """CREATE TABLE inbound_streams (
    id INTEGER PRIMARY KEY,
    peer INTEGER NOT NULL REFERENCES peers (id),
    stream INTEGER NOT NULL,
    UNIQUE (peer, stream)
)""",
    """CREATE TABLE inbound (
    peer INTEGER NOT NULL REFERENCES peers (id),
    stream INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    payload BLOB NOT NULL
)""",
    "CREATE UNIQUE INDEX inbound_by_seq ON inbound (peer, stream, seq)",
    """CREATE TABLE tickets (
    id INTEGER PRIMARY KEY,
    peer INTEGER NOT NULL UNIQUE REFERENCES peers (id),
    ticket BLOB NOT NULL
)""",
    """CREATE TABLE prekeys (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state BLOB NOT NULL
)""",
    """CREATE TABLE identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    did TEXT NOT NULL,
    keyfile BLOB NOT NULL
)""",
)

_AUDIT_V2: Final = """CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    source TEXT NOT NULL,
    target TEXT,
    trigger TEXT NOT NULL,
    reason TEXT NOT NULL,
    at REAL NOT NULL
)"""

_AUDIT_LOG_V3: Final = """CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    digest BLOB NOT NULL
)"""

_TRUST_V3: Final = """CREATE TABLE trust (
    id INTEGER PRIMARY KEY,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    statement BLOB NOT NULL,
    UNIQUE (issuer, subject)
)"""


_GUARD_V4: Final = """CREATE TABLE handshake_guard (
    id INTEGER PRIMARY KEY,
    key BLOB NOT NULL UNIQUE,
    expires REAL NOT NULL
)"""


def _chain_old_audit(conn: sqlite3.Connection) -> None:
    """Version 3 chains the audit log (membrane/audit.py): the version 2
    rows are chained as they are, in their order, then the old table goes.
    (What was edited before the upgrade cannot be told afterwards.)"""
    rows = conn.execute(
        "SELECT subject, source, target, trigger, reason, at FROM audit ORDER BY id"
    ).fetchall()
    records = [
        TransitionRecord(
            subject,
            State(source),
            None if target is None else State(target),
            Trigger(trigger),
            reason,
            at,
        )
        for subject, source, target, trigger, reason, at in rows
    ]
    conn.executemany(
        "INSERT INTO audit_log (id, at, kind, subject, body, digest) VALUES (?, ?, ?, ?, ?, ?)",
        [
            (e.id, e.at, e.kind, e.subject, e.body, e.digest)
            for e in audit.chain(records, 0, audit.GENESIS)
        ],
    )
    conn.execute("DROP TABLE audit")


def _escape_payloads(conn: sqlite3.Connection) -> None:
    """Version 3 message bodies (core/link/envelope.py) reserve a first byte of
    0xFF: a stored payload that starts with it gets the escape prefix."""
    for select, update in (
        (
            "SELECT rowid, payload FROM outbound WHERE substr(payload, 1, 1) = X'FF'",
            "UPDATE outbound SET payload = ? WHERE rowid = ?",
        ),
        (
            "SELECT rowid, payload FROM inbound WHERE substr(payload, 1, 1) = X'FF'",
            "UPDATE inbound SET payload = ? WHERE rowid = ?",
        ),
    ):
        rows = conn.execute(select).fetchall()
        conn.executemany(update, [(b"\xff\x00" + bytes(p), rowid) for rowid, p in rows])


#: Version 5: the durable outbound queue as one row per committed batch
#: (a blob of ``u64 seq || u32 length || payload`` records), instead of one
#: row per message: a commit of N queued messages writes one row, and a
#: cumulative ack deletes whole batches.  ``outbound_acked`` holds what was
#: acknowledged of batches still kept: the cumulative floor (a range from
#: the lowest stored value) and selective ranges above it, each applying to
#: the batches up to ``upto`` (the newest batch id when it was acknowledged:
#: a message put again later under an acknowledged number is new, as in the
#: memory store; AUTOINCREMENT keeps ids from being reused).  A batch goes
#: once the floor passes its last message, a range once the floor passes it.
_OUTBOUND_V5: Final = (
    """CREATE TABLE outbound_batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    peer INTEGER NOT NULL REFERENCES peers (id),
    last_seq INTEGER NOT NULL,
    messages BLOB NOT NULL
)""",
    "CREATE INDEX outbound_batches_by_last ON outbound_batches (peer, last_seq)",
    """CREATE TABLE outbound_acked (
    peer INTEGER NOT NULL REFERENCES peers (id),
    start INTEGER NOT NULL,
    stop INTEGER NOT NULL,
    upto INTEGER NOT NULL
)""",
    "CREATE INDEX outbound_acked_by_stop ON outbound_acked (peer, stop)",
)

_BATCH_ENTRY: Final = struct.Struct(">QI")


def encode_batch(messages: Iterable[tuple[int, bytes]]) -> bytes:
    """One ``outbound_batches.messages`` blob (OverflowError for a number
    that is not an unsigned 64-bit integer, as SQLite gives for a column)."""
    pack = _BATCH_ENTRY.pack
    parts: list[bytes] = []
    for seq, payload in messages:
        if not 0 <= seq < 1 << 64:
            raise OverflowError(f"sequence number {seq} is not an unsigned 64-bit integer")
        parts.append(pack(seq, len(payload)))
        parts.append(payload)
    return b"".join(parts)


def decode_batch(blob: bytes) -> list[tuple[int, bytes]]:
    """The ``(seq, payload)`` records of a batch blob; a damaged blob raises
    ValueError (the store reports the file as corrupt)."""
    out: list[tuple[int, bytes]] = []
    unpack, size, pos = _BATCH_ENTRY.unpack_from, len(blob), 0
    while pos < size:
        if pos + _BATCH_ENTRY.size > size:
            raise ValueError("truncated outbound batch")
        seq, length = unpack(blob, pos)
        start = pos + _BATCH_ENTRY.size
        pos = start + length
        if pos > size:
            raise ValueError("truncated outbound batch")
        out.append((seq, blob[start:pos]))
    return out


def _batch_old_outbound(conn: sqlite3.Connection) -> None:
    """Version 5: each peer's version 4 outbound rows become one batch."""
    rows: dict[int, list[tuple[int, bytes]]] = {}
    for peer, seq, payload in conn.execute(
        "SELECT peer, seq, payload FROM outbound ORDER BY peer, seq"
    ):
        rows.setdefault(peer, []).append((seq + U64_OFFSET, bytes(payload)))
    conn.executemany(
        "INSERT INTO outbound_batches (peer, last_seq, messages) VALUES (?, ?, ?)",
        [
            (peer, messages[-1][0] - U64_OFFSET, encode_batch(messages))
            for peer, messages in rows.items()
        ],
    )
    conn.execute("DROP TABLE outbound")


#: A migration step: SQL text, or a function run on the connection.
Step = str | Callable[[sqlite3.Connection], None]

#: The statements that create a current (version 6) database.
CREATE: Final = (
    *(statement for statement in _V1 if "outbound" not in statement),
    _AUDIT_LOG_V3,
    _TRUST_V3,
    _GUARD_V4,
    *_OUTBOUND_V5,
    *federation.TABLES_V6,
)

#: ``MIGRATIONS[v]`` upgrades a version ``v`` database to ``v + 1``.
MIGRATIONS: Final[dict[int, tuple[Step, ...]]] = {
    1: (_AUDIT_V2,),
    2: (_AUDIT_LOG_V3, _TRUST_V3, _chain_old_audit, _escape_payloads),
    # Version 4 keeps the handshake replay guard (docs/STORE.md).
    3: (_GUARD_V4,),
    # Version 5 stores the outbound queue as batches (issue 18).
    4: (*_OUTBOUND_V5, _batch_old_outbound),
    # Version 6: federated sessions (store/federation.py); nothing older changes.
    5: federation.TABLES_V6,
}

_TABLES_V1: Final = frozenset(
    {
        "peers",
        "sessions",
        "outbound",
        "inbound_streams",
        "inbound",
        "tickets",
        "prekeys",
        "identity",
    }
)

#: The tables each version has (a file of ours missing one is damaged).
TABLES: Final[dict[int, frozenset[str]]] = {
    1: _TABLES_V1,
    2: _TABLES_V1 | {"audit"},
    3: _TABLES_V1 | {"audit_log", "trust"},
    4: _TABLES_V1 | {"audit_log", "trust", "handshake_guard"},
    # (and SQLite's own sqlite_sequence, made with the AUTOINCREMENT table)
    5: (_TABLES_V1 - {"outbound"})
    | {"audit_log", "trust", "handshake_guard", "outbound_batches", "outbound_acked"},
    6: (_TABLES_V1 - {"outbound"})
    | {"audit_log", "trust", "handshake_guard", "outbound_batches", "outbound_acked"}
    | federation.NAMES_V6,
}


def problem(version: int, tables: set[str]) -> str | None:
    """Why a file with our application id and ``version`` is not usable
    (``None`` when it is); the version must not be newer than ours."""
    expected = TABLES.get(version)
    if expected is None:
        return f"schema version {version} is not one l2session ever wrote (damaged header?)"
    missing = sorted(expected - tables)
    if missing:
        return f"schema version {version} lacks the table {missing[0]!r} (damaged or edited?)"
    return None


def create(conn: sqlite3.Connection) -> None:
    """Create the current schema in an empty database (inside a transaction)."""
    for statement in CREATE:
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Upgrade a database from ``version`` to :data:`SCHEMA_VERSION`, one
    step at a time (inside the caller's transaction; on any error the caller
    rolls back and the file stays as it was)."""
    for step in range(version, SCHEMA_VERSION):
        for statement in MIGRATIONS[step]:
            if isinstance(statement, str):
                conn.execute(statement)
            else:
                statement(conn)
        # A PRAGMA cannot take a bound parameter; ``step`` is our own int.
        conn.execute(f"PRAGMA user_version = {step + 1:d}")
