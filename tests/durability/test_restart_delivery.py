"""Exactly-once, in-order delivery across a restart of either side.

Two real nodes (real PQXDH, real ratchets) on the seeded mock network with
loss and reordering.  One of them is killed in the middle of a 10,000
message stream: its objects are dropped with every uncommitted write, and a
new node is started from its store (SQLite file or in-memory), which
resumes the session with its ticket and reconciles with SYNC.  The
receiving application must see 0..9,999 exactly once and in order.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from l2session.core.lifecycle.persistence import Journal
from l2session.core.states import State, Trigger
from l2session.store.memory import MemoryStore
from l2session.testing.network import LinkProfile
from l2session.testing.simulation import SimNode, Simulation

from .harness import Kill, Stream, established

TOTAL = 10_000
LOSSY = LinkProfile(latency=0.02, jitter=0.01, loss=0.05, duplicate=0.02, reorder=0.05)

StoreFactory = Callable[[str], tuple[Journal, Callable[[], Journal]]]


def memory_store(name: str, tmp: Path) -> tuple[Journal, Callable[[], Journal]]:
    store = MemoryStore()

    def reopen() -> Journal:
        store.crash()
        return store

    return store, reopen


def sqlite_store(name: str, tmp: Path) -> tuple[Journal, Callable[[], Journal]]:
    from l2session.store.sqlite import SqliteStore

    path = tmp / f"{name}.db"
    handles = [SqliteStore.open(path)]

    def reopen() -> Journal:
        handles[-1].crash()
        handles.append(SqliteStore.open(path))
        return handles[-1]

    return handles[0], reopen


STORES = {"memory": memory_store, "sqlite": sqlite_store}


def pair(
    seed: str, kind: str, tmp: Path
) -> tuple[Simulation, SimNode, SimNode, dict[str, Callable[[], Journal]]]:
    sim = Simulation(seed, profile=LOSSY)
    reopen: dict[str, Callable[[], Journal]] = {}
    nodes = []
    for name in ("alice", "bob"):
        store, reopen[name] = STORES[kind](name, tmp)
        nodes.append(sim.add_node(name, store=store))
    alice, bob = nodes
    alice.manager.establish(bob.did)
    sim.run_until(lambda: established(alice, bob) and established(bob, alice), timeout=60)
    return sim, alice, bob, reopen


def resumed_not_rehandshaken(node: SimNode, peer: SimNode) -> None:
    """The restarted node came back by resumption (no PQXDH run)."""
    session = node.session(peer)
    assert session is not None
    reasons = [r.reason for r in session.history]
    assert "restored from store" in reasons
    assert session.channel is not None
    assert session.resume is None
    # A resumed channel keeps the key age of the last post-quantum keying,
    # which predates the restart; a full handshake would have reset it.
    assert session.pq_keyed_at < node.manager.now() - 1


@pytest.mark.parametrize("kind", sorted(STORES))
def test_receiver_killed_mid_stream_loses_and_repeats_nothing(kind: str, tmp_path: Path) -> None:
    """Bob is killed right after a DATA packet was processed and before the
    commit that would have let its acknowledgement leave."""
    sim, alice, bob, reopen = pair(f"rx-kill-{kind}", kind, tmp_path)
    stream = Stream(sim, "alice", "bob", TOTAL)
    kill = Kill("bob", lambda s: False, reopen["bob"])
    real = bob.manager.receive_datagram

    positions: list[int] = []

    def crash_after(data: bytes, address: str, path: str) -> bool:
        authentic = real(data, address, path)
        if not kill.done and len(stream.received) >= TOTAL // 3:
            session = bob.session(alice)
            if session is not None and session.available:
                kill.done = True
                kill.at_received = len(stream.received)
                positions.append(session.inbound.next_expected)
                new = sim.restart("bob", kill.reopen()).session(alice)
                assert new is not None
                positions.append(new.inbound.next_expected)
        return authentic

    bob.manager.receive_datagram = crash_after  # type: ignore[method-assign]
    stream.run()
    assert kill.done
    assert 0 < kill.at_received < TOTAL
    # The kill lost messages that had arrived but were not committed (and
    # so never acknowledged): the restored high-water mark is lower.
    before, restored = positions
    assert kill.at_received <= restored < before
    stream.check_exactly_once()
    resumed_not_rehandshaken(sim.nodes["bob"], alice)


@pytest.mark.parametrize("kind", sorted(STORES))
def test_sender_killed_mid_stream_loses_and_repeats_nothing(kind: str, tmp_path: Path) -> None:
    """Alice is killed right after her application queued messages that
    were not committed yet: they are lost together with their sequence
    numbers, and ``Session.sent`` tells the restarted application where to
    continue."""
    sim, _alice, bob, reopen = pair(f"tx-kill-{kind}", kind, tmp_path)
    seen_sent: list[int] = []

    def uncommitted_sends(stream: Stream) -> bool:
        session = stream.node("alice").session(bob)
        if session is None or len(stream.received) < TOTAL // 2 or not stream.sent_this_step:
            return False
        seen_sent.append(session.sent)
        return True

    kill = Kill("alice", uncommitted_sends, reopen["alice"])
    restored_sent: list[int] = []

    def watch(stream: Stream) -> None:
        kill(stream)
        if kill.done and not restored_sent:
            session = stream.node("alice").session(bob)
            assert session is not None
            restored_sent.append(session.sent)

    stream = Stream(sim, "alice", "bob", TOTAL, on_step=watch)
    stream.run()
    assert kill.done
    # Sends the application made in its last turn were not committed: the
    # restarted session numbers fewer, and the application resends them.
    assert restored_sent[0] < seen_sent[-1]
    restarted = sim.nodes["alice"].session(bob)
    assert restarted is not None
    assert restarted.sent == TOTAL
    stream.check_exactly_once()
    resumed_not_rehandshaken(sim.nodes["alice"], bob)


@pytest.mark.parametrize("kind", sorted(STORES))
def test_receiver_killed_after_the_application_took_messages(kind: str, tmp_path: Path) -> None:
    """``receive_many`` committed the hand-off: nothing it returned comes
    back after the restart, and what was delivered but not yet taken is
    still there."""
    sim, alice, _bob, reopen = pair(f"rx-took-{kind}", kind, tmp_path)

    def mid(stream: Stream) -> bool:
        session = stream.node("bob").session(alice)
        return len(stream.received) >= TOTAL // 4 and session is not None

    kill = Kill("bob", mid, reopen["bob"])
    stream = Stream(sim, "alice", "bob", TOTAL, on_step=kill)
    stream.run()
    assert kill.done
    stream.check_exactly_once()


def test_both_killed_at_once_from_sqlite(tmp_path: Path) -> None:
    """Both processes die at once (``kill -9`` of both; power cuts are
    test_power_cut.py's): both restart from their files; the stream still
    completes exactly once."""
    sim, _alice, _bob, reopen = pair("both-kill", "sqlite", tmp_path)

    def both(stream: Stream) -> None:
        if not getattr(both, "done", False) and len(stream.received) >= stream.total // 2:
            both.done = True  # type: ignore[attr-defined]
            sim.restart("alice", reopen["alice"]())
            sim.restart("bob", reopen["bob"]())

    stream = Stream(sim, "alice", "bob", 3_000, on_step=both)
    stream.run()
    assert getattr(both, "done", False)
    stream.check_exactly_once()


def test_restored_session_audit_trail_is_in_the_store(tmp_path: Path) -> None:
    """State transitions reach the store's audit trail, across the restart."""
    sim, alice, _bob, reopen = pair("audit", "memory", tmp_path)
    store = reopen["bob"]()
    assert isinstance(store, MemoryStore)
    before = store.audit_trail()
    assert [r.trigger for r in before][:1] == [Trigger.RECEIVE_HANDSHAKE]
    sim.restart("bob", store)
    sim.run_until(lambda: established(sim.nodes["bob"], alice), timeout=30)
    after = store.audit_trail()
    assert after[: len(before)] == before
    restored = [r for r in after[len(before) :] if r.reason == "restored from store"]
    assert restored
    assert restored[0].source is State.IDLE


def test_restore_commits_before_the_resume_leaves(tmp_path: Path) -> None:
    """What restoring writes is committed by restore() itself, so the first
    datagrams_to_send (the one carrying the RESUME) commits nothing: the
    RESUME needs nothing durable first (issue 18)."""
    sim, _alice, bob, reopen = pair("restore commit", "sqlite", tmp_path)
    from l2session.store.sqlite import SqliteStore

    store = reopen["alice"]()
    assert isinstance(store, SqliteStore)
    sim.restart("alice", store)
    restarted = sim.nodes["alice"]
    assert restarted.session(bob) is not None
    assert not store.pending  # committed inside restore()
    commits = store.commits
    outgoing = restarted.manager.datagrams_to_send()
    assert outgoing  # the RESUME
    assert store.commits == commits


def test_a_store_starts_its_wal_when_it_opens(tmp_path: Path) -> None:
    """The first write after opening creates the -wal file and syncs its
    header and directory (milliseconds on a VM disk): open() does it, so no
    later commit -- after a restart, the resumption's -- pays for it."""
    from l2session.store.sqlite import SqliteStore

    path = tmp_path / "node.db"
    SqliteStore.open(path).close()
    assert not (tmp_path / "node.db-wal").exists() or (tmp_path / "node.db-wal").stat().st_size == 0
    with SqliteStore.open(path) as store:
        wal = tmp_path / "node.db-wal"
        assert wal.exists()
        assert wal.stat().st_size >= 32  # the WAL header, written and synced
        assert not store.pending
