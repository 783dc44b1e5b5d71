"""One behaviour, two stores: every test runs on MemoryStore and SqliteStore.

MemoryStore is the reference semantics of core/lifecycle/persistence.py's Journal;
SqliteStore must match it exactly, including what a crash loses (every
write since the last commit) and the order of sessions, tickets and
inbound streams in the snapshot.
"""

from __future__ import annotations

import pytest

from l2session.core.lifecycle.persistence import Snapshot, StoredInbound
from l2session.crypto.handshake_guard import DEFAULT_MAX_ENTRIES
from l2session.store import memory as store_memory
from l2session.store import sqlite as store_sqlite
from l2session.store import sqlite_writes as store_sqlite_writes

from .helpers import PEER_A, PEER_B, PEER_C, U64_MAX, Node, session, ticket, transition


def test_a_new_store_is_empty(node: Node) -> None:
    assert node.store.load() == Snapshot()
    assert node.store.audit_trail() == []


def test_writes_are_invisible_until_commit_and_lost_in_a_crash(node: Node) -> None:
    store = node.store
    store.put_session(session(next_seq=1))
    store.put_outbound(PEER_A, 0, b"zero")
    store.commit()
    committed = store.load()
    # Everything below is buffered, never committed.
    store.put_session(session(next_seq=2))
    store.put_outbound(PEER_A, 1, b"one")
    store.put_inbound(PEER_A, 5, 0, b"in")
    store.put_ticket(ticket())
    store.put_prekeys(b"keys")
    store.append_audit(transition(0))
    store.delete_session(PEER_B)
    assert store.load() == committed
    store = node.restart()
    assert store.load() == committed
    assert committed.sessions == (session(next_seq=1),)
    assert committed.outbound == {PEER_A: [(0, b"zero")]}
    assert store.audit_trail() == []


def test_a_commit_survives_a_restart_whole(node: Node) -> None:
    store = node.store
    store.put_session(session())
    store.put_outbound(PEER_A, 3, b"three")
    store.put_inbound(PEER_A, 5, 1, b"early")
    store.put_ticket(ticket())
    store.put_prekeys(b"keys")
    store.append_audit(transition(0))
    store.commit()
    before = store.load()
    store = node.restart()
    assert store.load() == before
    assert before.prekeys == b"keys"
    assert before.tickets == (ticket(),)
    assert before.inbound == {PEER_A: [StoredInbound(5, 1, b"early")]}
    assert store.audit_trail() == [transition(0)]


def test_an_empty_commit_writes_nothing(node: Node) -> None:
    store = node.store
    store.commit()
    assert store.commits == 0
    store.put_outbound(PEER_A, 0, b"x")
    store.commit()
    store.commit()
    assert store.commits == 1


def test_writes_coalesce_within_a_commit(node: Node) -> None:
    store = node.store
    for n in range(5):
        store.put_session(session(next_seq=n))
        store.put_outbound(PEER_A, 0, b"v%d" % n)
    # Received and taken before the commit: never stored.
    store.put_inbound(PEER_A, 1, 0, b"gone")
    store.take_inbound(PEER_A, 1, 0)
    store.commit()
    snap = store.load()
    assert snap.sessions == (session(next_seq=4),)
    assert snap.outbound == {PEER_A: [(0, b"v4")]}
    assert snap.inbound == {}
    assert store.commits == 1


def test_sessions_keep_their_first_position_until_deleted(node: Node) -> None:
    store = node.store
    store.put_session(session(PEER_A))
    store.put_session(session(PEER_B))
    store.commit()
    store.put_session(session(PEER_A, next_seq=5))  # an update keeps its place
    store.commit()
    assert [s.peer_did for s in store.load().sessions] == [PEER_A, PEER_B]
    store.delete_session(PEER_A)
    store.put_session(session(PEER_C))
    store.commit()
    store.put_session(session(PEER_A))  # deleted, then new: last
    store.commit()
    assert [s.peer_did for s in store.load().sessions] == [PEER_B, PEER_C, PEER_A]


def test_cumulative_and_selective_acks(node: Node) -> None:
    store = node.store
    for seq in range(10):
        store.put_outbound(PEER_A, seq, b"%d" % seq)
        store.put_outbound(PEER_B, seq, b"%d" % seq)
    store.commit()
    store.ack_outbound(PEER_A, 3, ((5, 7), (9, 10)))
    store.ack_outbound(PEER_A, 2, ())  # an older cumulative ack changes nothing
    store.commit()
    assert [seq for seq, _ in store.load().outbound[PEER_A]] == [3, 4, 7, 8]
    assert len(store.load().outbound[PEER_B]) == 10
    store.ack_outbound(PEER_A, 9, ())
    store.ack_outbound(PEER_B, U64_MAX, ())
    store.commit()
    assert store.load().outbound == {}


def test_queued_and_acknowledged_in_one_commit(node: Node) -> None:
    store = node.store
    store.put_outbound(PEER_A, 0, b"a")
    store.commit()
    for seq in range(1, 6):
        store.put_outbound(PEER_A, seq, b"b")
    store.ack_outbound(PEER_A, 2, ((4, 5),))
    store.commit()
    assert store.load().outbound == {PEER_A: [(2, b"b"), (3, b"b"), (5, b"b")]}


def test_take_and_drop_inbound(node: Node) -> None:
    store = node.store
    for seq in range(6):
        store.put_inbound(PEER_A, 1, seq, b"%d" % seq)
    store.commit()
    store.take_inbound(PEER_A, 1, 1)
    store.commit()
    store.drop_inbound(PEER_A, 1, 4)
    store.commit()
    assert store.load().inbound == {PEER_A: [StoredInbound(1, 2, b"2"), StoredInbound(1, 3, b"3")]}
    store.take_inbound(PEER_A, 1, 3)
    store.commit()
    assert store.load().inbound == {}


def test_inbound_streams_come_in_the_order_they_first_got_a_message(node: Node) -> None:
    store = node.store
    store.put_inbound(PEER_A, U64_MAX, 7, b"old")
    store.put_inbound(PEER_A, 2, 0, b"new")
    store.commit()
    store.put_inbound(PEER_A, U64_MAX, 8, b"old too")  # the stream keeps its place
    store.commit()
    assert [(m.stream, m.seq) for m in store.load().inbound[PEER_A]] == [
        (U64_MAX, 7),
        (U64_MAX, 8),
        (2, 0),
    ]
    store.take_inbound(PEER_A, U64_MAX, 8)  # emptied: the stream is forgotten
    store.commit()
    store.put_inbound(PEER_A, U64_MAX, 9, b"back")  # and comes back last
    store.commit()
    assert [(m.stream, m.seq) for m in store.load().inbound[PEER_A]] == [(2, 0), (U64_MAX, 9)]


def test_a_stream_keeps_the_place_of_a_first_message_taken_before_commit(node: Node) -> None:
    store = node.store
    store.put_inbound(PEER_A, 1, 0, b"a")
    store.put_inbound(PEER_A, 2, 0, b"b")
    store.put_inbound(PEER_A, 1, 1, b"c")
    store.take_inbound(PEER_A, 1, 0)
    store.commit()
    assert [(m.stream, m.seq) for m in store.load().inbound[PEER_A]] == [(1, 1), (2, 0)]


def test_a_stream_emptied_by_a_drop_loses_its_place(node: Node) -> None:
    store = node.store
    store.put_inbound(PEER_A, 1, 3, b"a")
    store.put_inbound(PEER_A, 2, 0, b"b")
    store.commit()
    store.drop_inbound(PEER_A, 1, 0)
    store.commit()
    store.put_inbound(PEER_A, 1, 4, b"c")
    store.commit()
    assert [(m.stream, m.seq) for m in store.load().inbound[PEER_A]] == [(2, 0), (1, 4)]


def test_a_deleted_session_leaves_no_stream_order_behind(node: Node) -> None:
    store = node.store
    store.put_inbound(PEER_A, 1, 0, b"a")
    store.put_inbound(PEER_A, 2, 0, b"b")
    store.commit()
    store.delete_session(PEER_A)
    store.commit()
    store.put_inbound(PEER_A, 2, 1, b"c")
    store.put_inbound(PEER_A, 1, 1, b"d")
    store.commit()
    assert [(m.stream, m.seq) for m in store.load().inbound[PEER_A]] == [(2, 1), (1, 1)]


def test_tickets_replace_delete_and_keep_their_order(node: Node) -> None:
    store = node.store
    store.put_ticket(ticket(PEER_A))
    store.put_ticket(ticket(PEER_B))
    store.commit()
    store.put_ticket(ticket(PEER_A, secret=b"\x01" * 32))
    store.commit()
    assert store.load().tickets == (ticket(PEER_A, secret=b"\x01" * 32), ticket(PEER_B))
    store.delete_ticket(PEER_A)
    store.delete_ticket(PEER_C)  # never stored: nothing happens
    store.commit()
    assert store.load().tickets == (ticket(PEER_B),)
    store.delete_ticket(PEER_B)
    store.put_ticket(ticket(PEER_B, issued_ms=2000))  # the last write wins
    store.commit()
    assert store.load().tickets == (ticket(PEER_B, issued_ms=2000),)


def test_prekeys_last_write_wins(node: Node) -> None:
    store = node.store
    assert store.load().prekeys is None
    store.put_prekeys(b"first")
    store.put_prekeys(b"second")
    store.commit()
    store.put_prekeys(b"third")
    node.restart()
    assert node.store.load().prekeys == b"second"


def test_the_handshake_replay_guard_survives_a_restart_and_expired_entries_go(
    node: Node,
) -> None:
    store = node.store
    assert store.load().handshake_guard == ()
    store.remember_init(b"alice+ek1", 400.0, 100.0)
    store.remember_init(b"bob+ek2", 450.0, 150.0)
    store.commit()
    store.remember_init(b"lost+ek", 500.0, 200.0)  # never committed
    node.restart()
    assert sorted(node.store.load().handshake_guard) == [(b"alice+ek1", 400.0), (b"bob+ek2", 450.0)]
    node.store.remember_init(b"carol+ek3", 720.0, 420.0)  # alice's entry expired at 400
    node.store.commit()
    assert sorted(node.store.load().handshake_guard) == [(b"bob+ek2", 450.0), (b"carol+ek3", 720.0)]


def test_the_stored_replay_guard_is_bounded_by_count_keeping_the_newest(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A long freshness window (deep_space) must not let a flood of signed
    # INITs grow the table without limit: past the cap the oldest go, as in
    # the in-memory guard (crypto/handshake_guard.py).
    assert store_sqlite.GUARD_STORE_LIMIT == store_memory.GUARD_STORE_LIMIT == DEFAULT_MAX_ENTRIES
    # The SQLite store applies the cap where it writes batches (sqlite_writes).
    monkeypatch.setattr(store_sqlite_writes, "GUARD_STORE_LIMIT", 3)
    monkeypatch.setattr(store_memory, "GUARD_STORE_LIMIT", 3)
    store = node.store
    for n in range(4):
        store.remember_init(b"init%d" % n, 10_000.0 + n, 100.0)
    store.commit()
    store.remember_init(b"init4", 10_004.0, 101.0)
    store.commit()
    node.restart()
    kept = sorted(key for key, _ in node.store.load().handshake_guard)
    assert kept == [b"init2", b"init3", b"init4"]


def test_audit_trail_is_oldest_first_and_limited_to_the_newest(node: Node) -> None:
    store = node.store
    for n in range(3):
        store.append_audit(transition(n))
    store.commit()
    store.append_audit(transition(3, PEER_B))
    store.commit()
    expected = [transition(0), transition(1), transition(2), transition(3, PEER_B)]
    assert store.audit_trail() == expected
    assert store.audit_trail(limit=2) == expected[2:]
    assert store.audit_trail(limit=0) == []
    assert store.audit_trail(limit=10) == expected


def test_delete_session_forgets_its_messages_but_not_its_ticket(node: Node) -> None:
    store = node.store
    for peer in (PEER_A, PEER_B):
        store.put_session(session(peer))
        store.put_outbound(peer, 0, b"out")
        store.put_inbound(peer, 3, 0, b"in")
        store.put_ticket(ticket(peer))
    store.commit()
    store.put_outbound(PEER_A, 1, b"buffered, then deleted")
    store.delete_session(PEER_A)
    store.commit()
    snap = store.load()
    assert [s.peer_did for s in snap.sessions] == [PEER_B]
    assert set(snap.outbound) == {PEER_B}
    assert set(snap.inbound) == {PEER_B}
    assert [t.peer_did for t in snap.tickets] == [PEER_A, PEER_B]


def test_delete_then_recreate_in_one_commit(node: Node) -> None:
    store = node.store
    store.put_session(session(PEER_A, next_seq=5))
    for seq in range(5):
        store.put_outbound(PEER_A, seq, b"old")
    store.commit()
    store.delete_session(PEER_A)
    store.put_session(session(PEER_A, next_seq=1))
    store.put_outbound(PEER_A, 0, b"new")
    store.ack_outbound(PEER_A, 0, ())
    store.commit()
    snap = store.load()
    assert snap.sessions == (session(PEER_A, next_seq=1),)
    assert snap.outbound == {PEER_A: [(0, b"new")]}


def test_the_whole_unsigned_64_bit_range_round_trips(node: Node) -> None:
    store = node.store
    record = session(PEER_A)
    extreme = type(record)(PEER_A, None, "tcp", U64_MAX, U64_MAX, 0, 2**63)
    store.put_session(extreme)
    for seq in (0, 2**63 - 1, 2**63, U64_MAX):
        store.put_outbound(PEER_A, seq, b"")
        store.put_inbound(PEER_A, U64_MAX, seq, b"x")
    store.commit()
    store = node.restart()
    snap = store.load()
    assert snap.sessions == (extreme,)
    assert [seq for seq, _ in snap.outbound[PEER_A]] == [0, 2**63 - 1, 2**63, U64_MAX]
    # Order survives the top half of the range: ack everything below 2**63.
    store.ack_outbound(PEER_A, 2**63, ((U64_MAX, U64_MAX),))
    store.take_inbound(PEER_A, U64_MAX, 2**63)
    store.commit()
    snap = store.load()
    assert [seq for seq, _ in snap.outbound[PEER_A]] == [2**63, U64_MAX]
    assert [m.seq for m in snap.inbound[PEER_A]] == [U64_MAX]
