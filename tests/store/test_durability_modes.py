"""The barrier of both stores: what ``sync()`` does in each durability mode,
what a power cut of the in-memory store keeps, and how a failed fsync is
reported (the real fsync placement is in test_sqlite_barrier.py)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from l2session.errors import ConfigError, StoreIOError
from l2session.store import durability
from l2session.store.memory import MemoryStore
from l2session.store.sqlite import SqliteStore

PEER = "did:key:z6MkDurabilityModesPeer"


def test_modes_are_checked() -> None:
    assert durability.check_durability("power") == "power"
    assert durability.check_durability("process") == "process"
    for bad in ("full", "", None, 1):
        with pytest.raises(ConfigError, match="durability must be"):
            durability.check_durability(bad)
    with pytest.raises(ConfigError, match="durability"):
        MemoryStore(durability="fsync")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="writeback_after"):
        MemoryStore(writeback_after=0)


def test_power_cut_keeps_what_a_barrier_covered() -> None:
    store = MemoryStore()
    store.put_outbound(PEER, 1, b"one")
    store.commit()
    store.sync()
    store.put_outbound(PEER, 2, b"two")
    store.commit()
    store.put_outbound(PEER, 3, b"three")
    store.commit()
    store.put_outbound(PEER, 4, b"buffered")
    assert store.unsynced == 2
    store.power_cut()
    assert store.load().outbound == {PEER: [(1, b"one")]}
    assert store.unsynced == 0
    assert not store.pending
    assert (store.commits, store.syncs) == (3, 1)


def test_power_cut_may_keep_a_prefix_of_the_unsynced_commits() -> None:
    store = MemoryStore()
    for seq in range(1, 4):
        store.put_outbound(PEER, seq, b"m")
        store.commit()
    store.power_cut(keep_unsynced=2)
    assert [seq for seq, _ in store.load().outbound[PEER]] == [1, 2]
    with pytest.raises(ConfigError, match="keep_unsynced"):
        store.power_cut(keep_unsynced=-1)


def test_a_kill_keeps_every_commit() -> None:
    store = MemoryStore()
    store.put_outbound(PEER, 1, b"m")
    store.commit()
    store.put_outbound(PEER, 2, b"lost")
    store.crash()
    assert store.load().outbound == {PEER: [(1, b"m")]}
    assert store.unsynced == 1  # a later power cut could still take it


def test_one_barrier_covers_many_commits_and_an_empty_one_is_free() -> None:
    store = MemoryStore()
    for seq in range(10):
        store.put_outbound(PEER, seq, b"m")
        store.commit()
    store.sync()
    store.sync()
    assert (store.commits, store.syncs) == (10, 1)
    store.power_cut()
    assert len(store.load().outbound[PEER]) == 10


def test_process_mode_barrier_does_nothing() -> None:
    store = MemoryStore(durability="process")
    store.put_outbound(PEER, 1, b"m")
    store.commit()
    store.sync()
    assert store.syncs == 0
    store.power_cut()
    assert store.load().outbound == {}


def test_the_modelled_disk_writes_back_on_its_own() -> None:
    store = MemoryStore(durability="process", writeback_after=3)
    for seq in range(5):
        store.put_outbound(PEER, seq, b"m")
        store.commit()
    assert store.unsynced == 3
    store.power_cut()
    assert [seq for seq, _ in store.load().outbound[PEER]] == [0, 1]
    store.put_outbound(PEER, 9, b"m")
    store.commit()
    store.writeback()
    store.power_cut()
    assert [seq for seq, _ in store.load().outbound[PEER]] == [0, 1, 9]


def test_power_cut_audit_chain_stays_valid(tmp_path: Path) -> None:
    from l2session.core.states import State, TransitionRecord, Trigger

    store = MemoryStore()
    record = TransitionRecord(PEER, State.IDLE, State.HANDSHAKE_INITIATED, Trigger.RETRY, "", 1.0)
    store.append_audit(record)
    store.commit()
    store.sync()
    store.append_audit(record)
    store.commit()
    store.power_cut()
    assert len(store.audit_log()) == 1
    store.append_audit(record)
    store.commit()
    assert store.verify_audit().ok
    assert [e.id for e in store.audit_log()] == [1, 2]


def test_sqlite_barrier_counts_and_modes(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path / "p.db") as power:
        assert power.durability == "power"
        for seq in range(5):
            power.put_outbound(PEER, seq, b"m")
            power.commit()
        assert power.unsynced == 5
        power.sync()
        power.sync()
        assert (power.commits, power.syncs, power.unsynced) == (5, 1, 0)
    with SqliteStore.open(tmp_path / "q.db", durability="process") as process:
        process.put_outbound(PEER, 1, b"m")
        process.commit()
        process.sync()
        assert process.syncs == 0
    with SqliteStore.open(tmp_path / "f.db", synchronous="full") as full:
        full.put_outbound(PEER, 1, b"m")
        full.commit()
        assert full.unsynced == 0  # SQLite fsynced the commit itself
    with pytest.raises(ConfigError, match="durability"):
        SqliteStore.open(tmp_path / "x.db", durability="none")  # type: ignore[arg-type]


def test_sqlite_close_raises_a_barrier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    store = SqliteStore.open(tmp_path / "c.db")
    monkeypatch.setattr(os, "fdatasync", counting)
    store.put_outbound(PEER, 1, b"m")
    store.close()
    assert calls


def test_sqlite_failed_fsync_fails_every_later_barrier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteStore.open(tmp_path / "e.db")
    store.put_outbound(PEER, 1, b"m")
    store.commit()

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(StoreIOError, match="fsync failed"):
        store.sync()
    monkeypatch.undo()
    # The page cache may have dropped what it could not write: a later
    # fsync that succeeds proves nothing, so the barrier keeps failing.
    with pytest.raises(StoreIOError, match="fsync failed"):
        store.sync()
    store.crash()
    with SqliteStore.open(tmp_path / "e.db") as again:
        assert again.load().outbound == {PEER: [(1, b"m")]}


def test_a_node_opens_its_store_in_the_mode_chosen(tmp_path: Path) -> None:
    from l2session.runtime.node import Node
    from l2session.runtime.storage import NodeStorage

    for mode in ("power", "process"):
        storage = NodeStorage(tmp_path / f"{mode}.db", mode)
        store = storage.open()
        assert isinstance(store, SqliteStore)
        assert store.durability == mode
        storage.close()
    with pytest.raises(ConfigError, match="durability"):
        Node(store=tmp_path / "n.db", durability="fsync")  # type: ignore[arg-type]
