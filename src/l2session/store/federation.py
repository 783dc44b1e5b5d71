"""What federated sessions keep across restarts, in either store.

A federated session's guarantees (docs/FEDERATION.md) rest on four tables:

* ``fed_outbound``: each message as the *finished foreign event* (for Nostr
  the signed gift wrap), written before it is first published, deleted when
  a relay accepted it.  A restart republishes the very same event, with the
  same id, so a receiver that saw it already drops it: at-least-once
  publishing plus deduplication by id is exactly-once delivery.
* ``fed_seen``: ids of the events received, with their ``created_at``,
  bounded (``FederationConfig.seen_limit``); with ``fed_cursor`` (per
  bridge: the last time a subscription was in sync, and the *floor* below
  which events are no longer deduplicated and so refused) a restarted node
  asks the relays for what it missed and delivers each event once.
* ``fed_inbound``: received messages the application has not taken yet,
  written in the same transaction as their seen id.
* ``fed_links``: the signed links between this node's DID and its foreign
  keys (docs/FEDERATION.md, "The DID ↔ Nostr link").

Writes are small and commit at once, each in its own transaction, outside
the session core's group commit; the store's barrier (``sync``,
store/durability.py) covers them, and the runtime raises it before a
promise: before ``send`` returns (the message is queued) and before
``receive`` returns (the messages were taken).  Both stores implement
:class:`FederationTables`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from l2session.errors import StoreError


@dataclass(frozen=True, slots=True)
class Queued:
    """A message waiting for a relay to accept it."""

    peer: str
    seq: int
    event_id: str
    event: bytes


@dataclass(frozen=True, slots=True)
class Unread:
    """A received message the application has not taken yet."""

    peer: str
    id: int
    event_id: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Cursor:
    """Per bridge: the last sync time and the deduplication floor."""

    synced_at: float
    floor: float


@dataclass(frozen=True, slots=True)
class Link:
    """A signed DID ↔ foreign-key link (both signatures kept as given)."""

    did: str
    foreign: str
    statement: bytes


class FederationTables(Protocol):
    """The federated-session records (see module doc)."""

    def queue(self, message: Queued) -> None: ...
    def accepted(self, peer: str, seq: int) -> None: ...
    def queued(self) -> list[Queued]: ...
    def next_seq(self, peer: str) -> int: ...
    def received(self, bridge: str, event_id: str, created_at: float, unread: Unread) -> int: ...
    def seen(self, bridge: str) -> dict[str, float]: ...
    def forget_seen(self, bridge: str, below: float) -> None: ...
    def unread(self) -> list[Unread]: ...
    def taken(self, ids: list[int]) -> None: ...
    def cursor(self, bridge: str) -> Cursor: ...
    def set_cursor(self, bridge: str, cursor: Cursor) -> None: ...
    def put_link(self, link: Link) -> None: ...
    def links(self) -> list[Link]: ...


#: Version 6 of the schema (store/schema.py) adds these tables.
TABLES_V6: tuple[str, ...] = (
    """CREATE TABLE fed_outbound (
    id INTEGER PRIMARY KEY,
    peer TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    event BLOB NOT NULL,
    UNIQUE (peer, seq)
)""",
    """CREATE TABLE fed_seen (
    bridge TEXT NOT NULL,
    event_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (bridge, event_id)
)""",
    "CREATE INDEX fed_seen_by_time ON fed_seen (bridge, created_at)",
    """CREATE TABLE fed_inbound (
    id INTEGER PRIMARY KEY,
    peer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    payload BLOB NOT NULL
)""",
    """CREATE TABLE fed_cursor (
    bridge TEXT PRIMARY KEY,
    synced_at REAL NOT NULL,
    floor REAL NOT NULL
)""",
    """CREATE TABLE fed_links (
    did TEXT NOT NULL,
    foreign_id TEXT NOT NULL,
    statement BLOB NOT NULL,
    PRIMARY KEY (did, foreign_id)
)""",
    """CREATE TABLE fed_seq (
    peer TEXT PRIMARY KEY,
    next_seq INTEGER NOT NULL
)""",
)

NAMES_V6: frozenset[str] = frozenset(
    {"fed_outbound", "fed_seen", "fed_inbound", "fed_cursor", "fed_links", "fed_seq"}
)


class SqliteFederation:
    """:class:`FederationTables` on the node's SQLite connection."""

    __slots__ = ("_conn", "_wrote")

    def __init__(
        self, connection: Callable[[], sqlite3.Connection], wrote: Callable[[], None]
    ) -> None:
        self._conn = connection
        #: Tells the store a commit happened, so its barrier covers it.
        self._wrote = wrote

    def _write(self, doing: str, *statements: tuple[str, tuple[object, ...]]) -> int:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            last = 0
            for sql, args in statements:
                last = conn.execute(sql, args).lastrowid or last
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"federation store: {doing} failed: {exc}") from exc
        self._wrote()
        return last

    def queue(self, message: Queued) -> None:
        self._write(
            "queueing a message",
            (
                "INSERT INTO fed_outbound (peer, seq, event_id, event) VALUES (?, ?, ?, ?)",
                (message.peer, message.seq, message.event_id, message.event),
            ),
            (
                "INSERT INTO fed_seq (peer, next_seq) VALUES (?, ?) "
                "ON CONFLICT (peer) DO UPDATE SET next_seq = excluded.next_seq",
                (message.peer, message.seq + 1),
            ),
        )

    def accepted(self, peer: str, seq: int) -> None:
        self._write(
            "acknowledging a message",
            ("DELETE FROM fed_outbound WHERE peer = ? AND seq = ?", (peer, seq)),
        )

    def queued(self) -> list[Queued]:
        rows = self._conn().execute(
            "SELECT peer, seq, event_id, event FROM fed_outbound ORDER BY id"
        )
        return [Queued(p, s, e, bytes(b)) for p, s, e, b in rows]

    def next_seq(self, peer: str) -> int:
        row = (
            self._conn().execute("SELECT next_seq FROM fed_seq WHERE peer = ?", (peer,)).fetchone()
        )
        return 0 if row is None else int(row[0])

    def received(self, bridge: str, event_id: str, created_at: float, unread: Unread) -> int:
        return self._write(
            "recording a received message",
            (
                "INSERT INTO fed_seen (bridge, event_id, created_at) VALUES (?, ?, ?)",
                (bridge, event_id, created_at),
            ),
            (
                "INSERT INTO fed_inbound (peer, event_id, payload) VALUES (?, ?, ?)",
                (unread.peer, unread.event_id, unread.payload),
            ),
        )

    def seen(self, bridge: str) -> dict[str, float]:
        rows = self._conn().execute(
            "SELECT event_id, created_at FROM fed_seen WHERE bridge = ?", (bridge,)
        )
        return {e: float(t) for e, t in rows}

    def forget_seen(self, bridge: str, below: float) -> None:
        self._write(
            "forgetting old event ids",
            ("DELETE FROM fed_seen WHERE bridge = ? AND created_at < ?", (bridge, below)),
        )

    def unread(self) -> list[Unread]:
        rows = self._conn().execute(
            "SELECT peer, id, event_id, payload FROM fed_inbound ORDER BY id"
        )
        return [Unread(p, i, e, bytes(b)) for p, i, e, b in rows]

    def taken(self, ids: list[int]) -> None:
        if ids:
            marks = ",".join("?" * len(ids))
            self._write(
                "taking messages",
                (f"DELETE FROM fed_inbound WHERE id IN ({marks})", tuple(ids)),  # noqa: S608
            )

    def cursor(self, bridge: str) -> Cursor:
        row = (
            self._conn()
            .execute("SELECT synced_at, floor FROM fed_cursor WHERE bridge = ?", (bridge,))
            .fetchone()
        )
        return Cursor(0.0, 0.0) if row is None else Cursor(float(row[0]), float(row[1]))

    def set_cursor(self, bridge: str, cursor: Cursor) -> None:
        self._write(
            "moving the subscription cursor",
            (
                "INSERT INTO fed_cursor (bridge, synced_at, floor) VALUES (?, ?, ?) "
                "ON CONFLICT (bridge) DO UPDATE SET synced_at = excluded.synced_at, "
                "floor = excluded.floor",
                (bridge, cursor.synced_at, cursor.floor),
            ),
        )

    def put_link(self, link: Link) -> None:
        self._write(
            "recording a DID link",
            (
                "INSERT INTO fed_links (did, foreign_id, statement) VALUES (?, ?, ?) "
                "ON CONFLICT (did, foreign_id) DO UPDATE SET statement = excluded.statement",
                (link.did, link.foreign, link.statement),
            ),
        )

    def links(self) -> list[Link]:
        rows = self._conn().execute("SELECT did, foreign_id, statement FROM fed_links")
        return [Link(d, f, bytes(s)) for d, f, s in rows]


class MemoryFederation:
    """:class:`FederationTables` in memory (tests, store-less nodes)."""

    __slots__ = ("_cursors", "_inbound", "_links", "_next", "_outbound", "_rowid", "_seen")

    def __init__(self) -> None:
        self._outbound: dict[tuple[str, int], Queued] = {}
        self._next: dict[str, int] = {}
        self._seen: dict[str, dict[str, float]] = {}
        self._inbound: dict[int, Unread] = {}
        self._rowid = 0
        self._cursors: dict[str, Cursor] = {}
        self._links: dict[tuple[str, str], Link] = {}

    def queue(self, message: Queued) -> None:
        if (message.peer, message.seq) in self._outbound:
            raise StoreError(f"message #{message.seq} to {message.peer} is already queued")
        self._outbound[message.peer, message.seq] = message
        self._next[message.peer] = message.seq + 1

    def accepted(self, peer: str, seq: int) -> None:
        self._outbound.pop((peer, seq), None)

    def queued(self) -> list[Queued]:
        return list(self._outbound.values())

    def next_seq(self, peer: str) -> int:
        return self._next.get(peer, 0)

    def received(self, bridge: str, event_id: str, created_at: float, unread: Unread) -> int:
        seen = self._seen.setdefault(bridge, {})
        if event_id in seen:
            raise StoreError(f"event {event_id} was already recorded")
        seen[event_id] = created_at
        self._rowid += 1
        self._inbound[self._rowid] = Unread(unread.peer, self._rowid, event_id, unread.payload)
        return self._rowid

    def seen(self, bridge: str) -> dict[str, float]:
        return dict(self._seen.get(bridge, {}))

    def forget_seen(self, bridge: str, below: float) -> None:
        seen = self._seen.get(bridge, {})
        for event_id in [e for e, t in seen.items() if t < below]:
            del seen[event_id]

    def unread(self) -> list[Unread]:
        return list(self._inbound.values())

    def taken(self, ids: list[int]) -> None:
        for rowid in ids:
            self._inbound.pop(rowid, None)

    def cursor(self, bridge: str) -> Cursor:
        return self._cursors.get(bridge, Cursor(0.0, 0.0))

    def set_cursor(self, bridge: str, cursor: Cursor) -> None:
        self._cursors[bridge] = cursor

    def put_link(self, link: Link) -> None:
        self._links[link.did, link.foreign] = link

    def links(self) -> list[Link]:
        return list(self._links.values())
