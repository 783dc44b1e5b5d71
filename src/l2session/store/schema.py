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
that :class:`~l2session.core.persistence.Snapshot` promises (an upsert keeps
a row's id; a row deleted and put again gets a new, larger one).  Peer DIDs
(about 56 characters) are stored once, in ``peers``; the other tables refer
to them by a small integer.

Unsigned 64-bit values (stream ids, sequence numbers) are stored *offset
binary*, ``value - 2**63``, so that the whole u64 range fits SQLite's signed
INTEGER and comparisons (``seq < below``) keep their order.
"""

from __future__ import annotations

import sqlite3
from typing import Final

#: ``PRAGMA application_id``: "L2SS".
APPLICATION_ID: Final = 0x4C32_5353
#: ``PRAGMA user_version`` of files this code writes.
SCHEMA_VERSION: Final = 2

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

#: The statements that create a current (version 2) database.
CREATE: Final = (*_V1, _AUDIT_V2)

#: ``MIGRATIONS[v]`` upgrades a version ``v`` database to ``v + 1``.
MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {
    1: (_AUDIT_V2,),
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
            conn.execute(statement)
        # A PRAGMA cannot take a bound parameter; ``step`` is our own int.
        conn.execute(f"PRAGMA user_version = {step + 1:d}")
