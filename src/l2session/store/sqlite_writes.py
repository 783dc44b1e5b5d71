"""Writing one buffered :class:`~l2session.store.buffer.Batch` into the
SQLite tables: the statements and the order in which they run (the order
buffer.py documents), inside the transaction
:meth:`~l2session.store.sqlite.SqliteStore.commit` opens.

Apart from :mod:`l2session.store.sqlite` (opening, committing, the
barrier, reading back) because this is the one place that knows how a
batch maps onto rows: sessions, outbound batches and their
acknowledgements, inbound streams, tickets, prekeys, the replay guard,
trust statements and the audit chain.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Final

from l2session.crypto.handshake_guard import DEFAULT_MAX_ENTRIES
from l2session.membrane import audit
from l2session.store import schema
from l2session.store.buffer import Batch, acked

#: The stored handshake replay guard keeps at most this many entries (the
#: newest), as the in-memory guard does.
GUARD_STORE_LIMIT: Final = DEFAULT_MAX_ENTRIES

_OFF: Final = schema.U64_OFFSET

# The statements, written once so that the sqlite3 statement cache reuses them.
_UPSERT_SESSION: Final = (
    "INSERT INTO sessions (peer, address, path, out_stream, next_seq, in_stream, next_expected)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (peer) DO UPDATE SET address = excluded.address,"
    " path = excluded.path, out_stream = excluded.out_stream, next_seq = excluded.next_seq,"
    " in_stream = excluded.in_stream, next_expected = excluded.next_expected"
)
_PUT_BATCH: Final = "INSERT INTO outbound_batches (peer, last_seq, messages) VALUES (?, ?, ?)"
_ADD_STREAM: Final = (
    "INSERT INTO inbound_streams (peer, stream) VALUES (?, ?) ON CONFLICT (peer, stream) DO NOTHING"
)
_UPSERT_INBOUND: Final = (
    "INSERT INTO inbound (peer, stream, seq, payload) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (peer, stream, seq) DO UPDATE SET payload = excluded.payload"
)
# A cumulative ack: whole batches below it go, and so do the ack ranges it
# covers (the old floor among them), then the new floor is kept as a range
# from the lowest stored value.  A selective ack range is only recorded.
_ACK_BATCHES: Final = "DELETE FROM outbound_batches WHERE peer = ? AND last_seq < ?"
_ACK_COVERED: Final = "DELETE FROM outbound_acked WHERE peer = ? AND stop <= ?"
_ACK_ADD: Final = (
    "INSERT INTO outbound_acked (peer, start, stop, upto) VALUES (?, ?, ?,"
    " (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'outbound_batches'))"
)
_ACK_CONTAINED: Final = (
    "DELETE FROM outbound_acked WHERE peer = ? AND start >= ? AND stop <= ? AND start > ?"
)
_LOWEST: Final = -(1 << 63)
_TAKE: Final = "DELETE FROM inbound WHERE peer = ? AND stream = ? AND seq <= ?"
_DROP: Final = "DELETE FROM inbound WHERE peer = ? AND stream = ? AND seq >= ?"
_FORGET_EMPTY_STREAM: Final = (
    "DELETE FROM inbound_streams WHERE peer = ?1 AND stream = ?2"
    " AND NOT EXISTS (SELECT 1 FROM inbound WHERE peer = ?1 AND stream = ?2)"
)
_DELETE_SESSION: Final = (
    "DELETE FROM sessions WHERE peer = ?",
    "DELETE FROM outbound_batches WHERE peer = ?",
    "DELETE FROM outbound_acked WHERE peer = ?",
    "DELETE FROM inbound WHERE peer = ?",
    "DELETE FROM inbound_streams WHERE peer = ?",
)
_UPSERT_TICKET: Final = (
    "INSERT INTO tickets (peer, ticket) VALUES (?, ?)"
    " ON CONFLICT (peer) DO UPDATE SET ticket = excluded.ticket"
)
_DELETE_TICKET: Final = "DELETE FROM tickets WHERE peer = ?"
_PUT_GUARD: Final = (
    "INSERT INTO handshake_guard (key, expires) VALUES (?, ?)"
    " ON CONFLICT (key) DO UPDATE SET expires = excluded.expires"
)
_PRUNE_GUARD: Final = "DELETE FROM handshake_guard WHERE expires < ?"
# Keeps the newest GUARD_STORE_LIMIT rows (ids grow with insertion): the
# table is bounded by count as well as by time, since a long freshness
# window (SessionConfig.deep_space) times a flood of signed INITs from
# throw-away did:keys would otherwise grow it without limit.
_CAP_GUARD: Final = (
    "DELETE FROM handshake_guard WHERE id <= (SELECT max(id) FROM handshake_guard) - ?"
)
_PUT_PREKEYS: Final = (
    "INSERT INTO prekeys (id, state) VALUES (1, ?)"
    " ON CONFLICT (id) DO UPDATE SET state = excluded.state"
)
_APPEND_AUDIT: Final = (
    "INSERT INTO audit_log (id, at, kind, subject, body, digest) VALUES (?, ?, ?, ?, ?, ?)"
)
_AUDIT_HEAD: Final = "SELECT id, digest FROM audit_log ORDER BY id DESC LIMIT 1"
_UPSERT_TRUST: Final = (
    "INSERT INTO trust (issuer, subject, statement) VALUES (?, ?, ?)"
    " ON CONFLICT (issuer, subject) DO UPDATE SET statement = excluded.statement"
)


class BatchWriter:
    """Applies batches to one database, caching ``peers.did -> peers.id``."""

    __slots__ = ("peer_ids",)

    def __init__(self) -> None:
        #: peers.did -> peers.id for every peer this process touched.  Rows
        #: of ``peers`` are never deleted, so an entry never goes stale.
        self.peer_ids: dict[str, int] = {}

    def forget(self, added: list[str]) -> None:
        """Drop the ids of the peers a rolled-back commit added."""
        for did in added:
            del self.peer_ids[did]

    def apply(self, conn: sqlite3.Connection, b: Batch, added: list[str]) -> None:
        """``b`` in the order buffer.py documents: deleted sessions, puts,
        acknowledgements and hand-offs, drops, tickets, prekeys, audit."""
        for did in b.deleted_sessions:
            peer = self._known(conn, did)
            if peer is not None:
                for statement in _DELETE_SESSION:
                    conn.execute(statement, (peer,))
        if b.sessions:
            ids = self._ids(conn, b.sessions, added)
            conn.executemany(
                _UPSERT_SESSION,
                [
                    (
                        ids[r.peer_did],
                        r.address,
                        r.path,
                        r.out_stream - _OFF,
                        r.next_seq - _OFF,
                        r.in_stream - _OFF,
                        r.next_expected - _OFF,
                    )
                    for r in b.sessions.values()
                ],
            )
        if b.outbound:
            self._put_outbound(conn, b, added)
        if b.streams:
            self._put_inbound(conn, b, added)
        self._acknowledge(conn, b)
        for (did, stream), upto in b.taken.items():
            peer = self._known(conn, did)
            if peer is not None:
                conn.execute(_TAKE, (peer, stream - _OFF, upto - _OFF))
        for (did, stream), start in b.dropped.items():
            peer = self._known(conn, did)
            if peer is not None:
                conn.execute(_DROP, (peer, stream - _OFF, start - _OFF))
        for did, stream in {**b.taken, **b.dropped}:
            peer = self._known(conn, did)
            if peer is not None:
                conn.execute(_FORGET_EMPTY_STREAM, (peer, stream - _OFF))
        if b.tickets:
            self._put_tickets(conn, b, added)
        if b.prekeys is not None:
            conn.execute(_PUT_PREKEYS, (b.prekeys,))
        if b.guard_now is not None:
            conn.execute(_PRUNE_GUARD, (b.guard_now,))
        if b.guard:
            conn.executemany(_PUT_GUARD, list(b.guard.items()))
            conn.execute(_CAP_GUARD, (GUARD_STORE_LIMIT,))
        if b.trust:
            conn.executemany(
                _UPSERT_TRUST, [(issuer, subject, st) for (issuer, subject), st in b.trust.items()]
            )
        if b.audit:
            # Chained to the head as this transaction sees it, so a second
            # writer (another process) cannot fork the chain.
            head = conn.execute(_AUDIT_HEAD).fetchone()
            entries = audit.chain(
                b.audit, 0 if head is None else head[0], audit.GENESIS if head is None else head[1]
            )
            conn.executemany(
                _APPEND_AUDIT,
                [(e.id, e.at, e.kind, e.subject, e.body, e.digest) for e in entries],
            )

    def _put_outbound(self, conn: sqlite3.Connection, b: Batch, added: list[str]) -> None:
        """One row per peer per commit: the batch's messages in one blob."""
        ids = self._ids(conn, (did for did, _ in b.outbound), added)
        ranges: dict[str, list[tuple[int, int]]] = {}
        for did, start, end in b.acked_ranges:
            ranges.setdefault(did, []).append((start, end))
        below = b.acked_below
        per_peer: dict[str, list[tuple[int, bytes]]] = {}
        for (did, seq), payload in b.outbound.items():
            # Queued and acknowledged within one commit: never written.
            if (below or ranges) and acked(seq, below.get(did, 0), ranges.get(did, [])):
                continue
            per_peer.setdefault(did, []).append((seq, payload))
        rows = []
        for did, messages in per_peer.items():
            messages.sort()
            rows.append((ids[did], messages[-1][0] - _OFF, schema.encode_batch(messages)))
        conn.executemany(_PUT_BATCH, rows)

    def _put_inbound(self, conn: sqlite3.Connection, b: Batch, added: list[str]) -> None:
        ids = self._ids(conn, (did for did, _ in b.streams), added)
        # Streams get their place in the order they first got a message (the
        # Snapshot's order), even those whose messages are all taken or
        # dropped below: their row goes again with the emptied streams.
        conn.executemany(_ADD_STREAM, [(ids[did], stream - _OFF) for did, stream in b.streams])
        taken, dropped = b.taken, b.dropped
        conn.executemany(
            _UPSERT_INBOUND,
            [
                (ids[did], stream - _OFF, seq - _OFF, payload)
                for (did, stream, seq), payload in b.inbound.items()
                if seq > taken.get((did, stream), -1) and seq < dropped.get((did, stream), seq + 1)
            ],
        )

    def _acknowledge(self, conn: sqlite3.Connection, b: Batch) -> None:
        for did, below in b.acked_below.items():
            peer = self._known(conn, did)
            if peer is not None:
                stored = below - _OFF
                conn.execute(_ACK_BATCHES, (peer, stored))
                conn.execute(_ACK_COVERED, (peer, stored))
                conn.execute(_ACK_ADD, (peer, _LOWEST, stored))
        for did, start, end in b.acked_ranges:
            peer = self._known(conn, did)
            if peer is not None and start < end and end > b.acked_below.get(did, 0):
                # A later ACK repeats and widens its ranges: keep the widest.
                conn.execute(_ACK_CONTAINED, (peer, start - _OFF, end - _OFF, _LOWEST))
                conn.execute(_ACK_ADD, (peer, start - _OFF, end - _OFF))

    def _put_tickets(self, conn: sqlite3.Connection, b: Batch, added: list[str]) -> None:
        for did, ticket in b.tickets.items():
            if ticket is None:
                peer = self._known(conn, did)
                if peer is not None:
                    conn.execute(_DELETE_TICKET, (peer,))
            else:
                peer = self._ids(conn, (did,), added)[did]
                conn.execute(_UPSERT_TICKET, (peer, ticket.to_bytes()))

    def _known(self, conn: sqlite3.Connection, did: str) -> int | None:
        """The ``peers`` id of ``did``, or None if it was never stored."""
        peer = self.peer_ids.get(did)
        if peer is None:
            row = conn.execute("SELECT id FROM peers WHERE did = ?", (did,)).fetchone()
            if row is None:
                return None
            peer = self.peer_ids[did] = row[0]
        return peer

    def _ids(
        self, conn: sqlite3.Connection, dids: Iterable[str], added: list[str]
    ) -> dict[str, int]:
        """The ``peers`` ids of ``dids``, adding rows for new ones (listed in
        ``added``, so that a rolled-back commit can forget them)."""
        out: dict[str, int] = {}
        for did in dids:
            if did in out:
                continue
            peer = self._known(conn, did)
            if peer is None:
                peer = conn.execute("INSERT INTO peers (did) VALUES (?)", (did,)).lastrowid
                assert peer is not None
                self.peer_ids[did] = peer
                added.append(did)
            out[did] = peer
        return out
