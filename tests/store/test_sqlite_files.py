"""The database file: where it goes, who may touch it, and what is refused.

Every refused file must come out byte for byte as it went in (its SHA-256
is compared) with no ``-wal``, ``-shm`` or ``-journal`` file left next to it:
SQLite writes as soon as a database is opened for writing, so refusal must
happen before that.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from l2session.errors import (
    ConfigError,
    StoreCorrupt,
    StoreError,
    StoreForeign,
    StorePermissionError,
    StoreTooNew,
)
from l2session.store import SqliteStore, default_store_path, schema

from .helpers import PEER_A, companions, session, sha256


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def filled(path: Path, messages: int = 200) -> Path:
    """A healthy database with some rows, closed cleanly."""
    with SqliteStore.open(path) as store:
        store.put_session(session())
        for seq in range(messages):
            store.put_outbound(PEER_A, seq, bytes([seq % 251]) * 900)
    return path


def refused(path: Path, error: type[StoreError]) -> str:
    """Open ``path``, expect ``error``; the file must be untouched."""
    digest = sha256(path)
    with pytest.raises(error) as caught:
        SqliteStore.open(path)
    assert sha256(path) == digest
    assert companions(path) == []
    assert str(path) in str(caught.value)
    return str(caught.value)


# --------------------------------------------------------------------------
# creation


def test_new_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "node.db"
    old = os.umask(0)
    try:
        store = SqliteStore.open(path)
    finally:
        os.umask(old)
    try:
        store.put_outbound(PEER_A, 0, b"x")
        store.commit()
        assert mode_of(path) == 0o600
        assert companions(path) == ["-wal", "-shm"]
        assert mode_of(Path(f"{path}-wal")) == 0o600
        assert mode_of(Path(f"{path}-shm")) == 0o600
        assert mode_of(tmp_path / "a") == 0o700
        assert mode_of(tmp_path / "a" / "b") == 0o700
    finally:
        store.close()
    assert companions(path) == []  # a clean close folds the WAL in


def test_empty_files_and_empty_databases_become_stores(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch(mode=0o600)
    blank = tmp_path / "blank.db"
    sqlite3.connect(blank).close()  # a valid SQLite file without tables
    blank.chmod(0o600)
    for path in (empty, blank):
        with SqliteStore.open(path) as store:
            store.put_session(session())
        with SqliteStore.open(path) as store:
            assert store.load().sessions == (session(),)
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()


def test_default_path_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_store_path() == tmp_path / "xdg" / "l2session" / "node.db"
    with SqliteStore.open() as store:
        assert store.path == tmp_path / "xdg" / "l2session" / "node.db"
    assert (tmp_path / "xdg" / "l2session" / "node.db").is_file()
    assert mode_of(tmp_path / "xdg" / "l2session") == 0o700


@pytest.mark.parametrize("xdg", ["", "relative/dir"])
def test_default_path_without_a_usable_xdg_is_under_home(
    xdg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", xdg)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_store_path() == tmp_path / ".local" / "share" / "l2session" / "node.db"


def test_synchronous_choice(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="synchronous"):
        SqliteStore.open(tmp_path / "x.db", synchronous="off")
    for name, level in (("normal", 1), ("full", 2)):
        with SqliteStore.open(tmp_path / f"{name}.db", synchronous=name) as store:
            conn = store._conn  # the level is not otherwise observable
            assert conn is not None
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == level


# --------------------------------------------------------------------------
# permissions


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o606])
def test_a_database_others_can_read_or_write_is_refused(mode: int, tmp_path: Path) -> None:
    path = filled(tmp_path / "node.db")
    path.chmod(mode)
    assert f"chmod 600 {path}" in refused(path, StorePermissionError)


def test_a_symlink_is_refused(tmp_path: Path) -> None:
    real = filled(tmp_path / "real.db")
    link = tmp_path / "link.db"
    link.symlink_to(real)
    with pytest.raises(StorePermissionError, match="symbolic link"):
        SqliteStore.open(link)
    assert companions(real) == []


def test_a_wal_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = filled(tmp_path / "node.db")
    wal = Path(f"{path}-wal")
    wal.touch(mode=0o644)
    wal.chmod(0o644)
    with pytest.raises(StorePermissionError, match="wal file"):
        SqliteStore.open(path)


def test_a_leftover_wal_without_its_database_is_refused(tmp_path: Path) -> None:
    path = filled(tmp_path / "node.db")
    store = SqliteStore.open(path)
    store.put_outbound(PEER_A, 999, b"in the WAL only")
    store.commit()
    wal = Path(f"{path}-wal").read_bytes()
    store.close()
    path.unlink()
    Path(f"{path}-wal").write_bytes(wal)
    Path(f"{path}-wal").chmod(0o600)
    with pytest.raises(StoreError, match="left over"):
        SqliteStore.open(path)
    assert not path.exists()
    assert companions(path) == ["-wal"]


def test_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(StorePermissionError, match="chmod go-w"):
        SqliteStore.open(shared / "node.db")
    assert list(shared.iterdir()) == []


def test_a_directory_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "node.db").mkdir()
    with pytest.raises(StoreError, match="not a regular file"):
        SqliteStore.open(tmp_path / "node.db")


# --------------------------------------------------------------------------
# files that are not ours to open


def write_private(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def random_bytes(path: Path) -> None:
    write_private(path, os.urandom(8192))


def truncated(path: Path) -> None:
    data = filled(path).read_bytes()
    write_private(path, data[: len(data) // 2])


def truncated_to_the_header(path: Path) -> None:
    write_private(path, filled(path).read_bytes()[:60])


def garbage_in_the_middle(path: Path) -> None:
    data = bytearray(filled(path).read_bytes())
    middle = (len(data) // 4096 // 2) * 4096
    data[middle : middle + 4096] = os.urandom(4096)
    write_private(path, bytes(data))


def magic_then_garbage(path: Path) -> None:
    write_private(path, b"SQLite format 3\x00" + os.urandom(4080))


@pytest.mark.parametrize(
    "damage",
    [random_bytes, truncated, truncated_to_the_header, garbage_in_the_middle, magic_then_garbage],
)
def test_a_corrupt_file_is_refused_untouched(
    damage: Callable[[Path], None], tmp_path: Path
) -> None:
    path = tmp_path / "node.db"
    damage(path)
    message = refused(path, StoreCorrupt)
    assert "Fix:" in message


def test_another_applications_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('someone')")
    conn.commit()
    conn.close()
    path.chmod(0o600)
    assert "contacts" in refused(path, StoreForeign)


def test_a_database_with_a_foreign_application_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1")
    conn.close()
    path.chmod(0o600)
    assert "0x00000001" in refused(path, StoreForeign)


def test_a_newer_database_is_refused_untouched(tmp_path: Path) -> None:
    path = filled(tmp_path / "node.db")
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    conn.close()
    message = refused(path, StoreTooNew)
    assert "upgrade l2session" in message


def test_our_database_missing_a_table_is_refused(tmp_path: Path) -> None:
    path = filled(tmp_path / "node.db")
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE audit_log")
    conn.close()
    assert "'audit_log'" in refused(path, StoreCorrupt)
