"""SQLite failures in use, a real kill -9, and the store's life cycle."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from l2session.errors import (
    StoreCorrupt,
    StoreError,
    StoreIOError,
    StoreLocked,
    StorePermissionError,
)
from l2session.store import SqliteStore
from l2session.store.files import error_from

from .helpers import PEER_A, companions, session, ticket, transition


def connection(store: SqliteStore) -> sqlite3.Connection:
    """The store's connection, for provoking failures the OS rarely offers."""
    conn = store._conn
    assert conn is not None
    return conn


def test_a_full_disk_fails_the_commit_and_keeps_it_buffered(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with SqliteStore.open(path) as store:
        store.put_outbound(PEER_A, 0, b"small")
        store.commit()
        pages = connection(store).execute("PRAGMA page_count").fetchone()[0]
        # The file may not grow: a quota, or a full disk.
        connection(store).execute(f"PRAGMA max_page_count = {pages}")
        for seq in range(1, 20):
            store.put_outbound(PEER_A, seq, bytes(4000))
        with pytest.raises(StoreIOError, match="disk is full") as caught:
            store.commit()
        assert str(path) in str(caught.value)
        assert store.load().outbound == {PEER_A: [(0, b"small")]}  # nothing of it
        assert store.pending  # still buffered: room made, commit again
        connection(store).execute("PRAGMA max_page_count = 1000000")
        store.commit()
        assert len(store.load().outbound[PEER_A]) == 20
        assert not store.pending


def test_a_value_outside_u64_fails_the_commit_cleanly(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path / "node.db") as store:
        store.put_session(session())
        store.commit()
        store.put_outbound(PEER_A, 2**64, b"bad")
        with pytest.raises(StoreError, match="unsigned 64-bit"):
            store.commit()
        assert store.load().sessions == (session(),)
        store.discard()


@pytest.mark.parametrize(
    ("name", "error", "words"),
    [
        ("SQLITE_CORRUPT", StoreCorrupt, "damaged"),
        ("SQLITE_NOTADB", StoreCorrupt, "damaged"),
        ("SQLITE_FULL", StoreIOError, "disk is full"),
        ("SQLITE_IOERR_WRITE", StoreIOError, "read or write"),
        ("SQLITE_READONLY", StoreIOError, "read or write"),
        ("SQLITE_BUSY", StoreLocked, "another process"),
        ("SQLITE_PERM", StorePermissionError, "access denied"),
        ("SQLITE_MISUSE", StoreError, "failed"),
    ],
)
def test_sqlite_errors_become_typed_errors(
    name: str, error: type[StoreError], words: str, tmp_path: Path
) -> None:
    exc = sqlite3.OperationalError("boom")
    exc.sqlite_errorname = name
    mapped = error_from(tmp_path / "node.db", exc, "committing")
    assert type(mapped) is error
    assert words in str(mapped)
    assert str(tmp_path / "node.db") in str(mapped)


def test_another_writer_holding_the_lock_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with SqliteStore.open(path) as store:
        connection(store).execute("PRAGMA busy_timeout = 50")  # not 5 s in a test
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            store.put_outbound(PEER_A, 0, b"x")
            with pytest.raises(StoreLocked, match="another process"):
                store.commit()
        finally:
            other.execute("ROLLBACK")
            other.close()
        store.commit()  # the lock is free: the buffered write goes through
        assert store.load().outbound == {PEER_A: [(0, b"x")]}


def test_a_stored_record_that_does_not_decode_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with SqliteStore.open(path) as store:
        store.put_ticket(ticket())
        store.append_audit(transition(0))
    conn = sqlite3.connect(path)
    conn.execute("UPDATE tickets SET ticket = x'00'")
    conn.execute("UPDATE audit_log SET body = json_set(body, '$.from', 'no such state')")
    conn.commit()
    conn.close()
    with SqliteStore.open(path) as store:
        with pytest.raises(StoreCorrupt, match="stored session"):
            store.load()
        with pytest.raises(StoreCorrupt, match="no such state"):
            store.audit_trail()


def test_a_closed_store_refuses_work(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path / "node.db")
    store.close()
    store.close()  # twice is fine
    assert store.closed
    store.put_outbound(PEER_A, 0, b"x")  # buffering needs no file
    with pytest.raises(StoreError, match="closed"):
        store.commit()
    with pytest.raises(StoreError, match="closed"):
        store.load()


def test_close_commits_and_crash_does_not(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with SqliteStore.open(path) as store:
        store.put_outbound(PEER_A, 0, b"kept")
    store = SqliteStore.open(path)
    store.put_outbound(PEER_A, 1, b"lost")
    store.crash()
    with SqliteStore.open(path) as store:
        assert store.load().outbound == {PEER_A: [(0, b"kept")]}


def test_an_empty_commit_does_not_touch_the_database(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path / "node.db") as store:
        statements: list[str] = []
        connection(store).set_trace_callback(statements.append)
        store.commit()
        assert statements == []
        store.put_outbound(PEER_A, 0, b"x")
        store.commit()
        assert statements[0] == "BEGIN IMMEDIATE"
        assert statements[-1] == "COMMIT"
        connection(store).set_trace_callback(None)


CHILD = textwrap.dedent(
    """
    import os, sys, time
    from l2session.store import SqliteStore
    store = SqliteStore.open(sys.argv[1])
    for seq in range(300):
        store.put_outbound("{peer}", seq, b"m%d" % seq)
        if seq % 32 == 31:
            store.commit()
    store.put_outbound("{peer}", 999, b"never committed")
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_committed_writes_survive_kill_9(tmp_path: Path) -> None:
    """A real process killed with SIGKILL: its WAL stays behind, and the
    next open reads every committed message from it (and nothing else)."""
    path = tmp_path / "node.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD.format(peer=PEER_A), str(path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert "-wal" in companions(path)  # not folded in: the process never closed
    with SqliteStore.open(path) as store:
        outbound = store.load().outbound[PEER_A]
    assert [seq for seq, _ in outbound] == list(range(288))  # 9 commits of 32
    assert outbound[-1] == (287, b"m287")
