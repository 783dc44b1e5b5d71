"""The database file on disk: where it lives, who may touch it, what is in it.

Everything here runs *before* SQLite writes a byte, because opening a
database for writing is not harmless: switching to WAL mode rewrites the
header, and a connection creates ``-wal`` and ``-shm`` files next to it.
So a file that is not ours (another application's, a newer l2session's, a
damaged one) is recognised first, by reading its header and then through a
read-only, *immutable* connection, which creates and changes nothing.

Permissions follow :mod:`l2session.store.keyfile` (OpenSSH ``StrictModes``):
the database holds private prekeys and resumption secrets, so a file others
can read is not secret, and one others can write (or a symlink, which may
point to a file someone else chose) is not ours.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from pathlib import Path
from typing import Final
from urllib.parse import quote

from l2session.errors import (
    ConfigError,
    StoreCorrupt,
    StoreError,
    StoreForeign,
    StoreIOError,
    StoreLocked,
    StorePermissionError,
    StoreTooNew,
)
from l2session.store import schema
from l2session.store.keyfile import owner_only_problem

FILE_MODE: Final = 0o600
DIR_MODE: Final = 0o700

#: The first 16 bytes of every SQLite 3 database file.
SQLITE_MAGIC: Final = b"SQLite format 3\x00"
_HEADER_SIZE: Final = 100
#: The files SQLite keeps next to the database (WAL mode, rollback journal).
COMPANIONS: Final = ("-wal", "-shm", "-journal")

_MOVE_AWAY: Final = "move it away (or pass another path) to start a new database"


def data_home() -> Path:
    """``$XDG_DATA_HOME/l2session``, or ``~/.local/share/l2session`` when
    ``XDG_DATA_HOME`` is unset, empty or relative (the XDG base directory
    spec says to ignore a relative value, which would depend on the working
    directory)."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "l2session"
    try:
        home = Path.home()
    except (RuntimeError, KeyError):
        home = Path()
    if not home.is_absolute():
        raise ConfigError(
            "cannot find the home directory for the default store path; "
            "set HOME or XDG_DATA_HOME, or pass an explicit path"
        )
    return home / ".local" / "share" / "l2session"


def default_store_path() -> Path:
    """Where :meth:`SqliteStore.open() <l2session.store.sqlite.SqliteStore.open>`
    puts the node database without a path: ``<data home>/node.db``."""
    return data_home() / "node.db"


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and missing ancestors, each with mode 0700.

    ``os.makedirs(mode=...)`` applies the mode to the last directory only
    (and subject to the umask), so they are created one by one.  The loop is
    bounded by the depth of the path.
    """
    missing: list[Path] = []
    current = directory
    for _ in range(len(directory.parts) + 1):
        if os.path.lexists(current):
            break
        missing.append(current)
        current = current.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            continue  # created concurrently; not ours to chmod
        os.chmod(d, DIR_MODE)


def prepare(path: Path) -> tuple[os.stat_result, bool]:
    """Make sure ``path`` is a private regular file; create it (empty, 0600)
    if missing.  Returns its status and whether we created it.

    SQLite gives its ``-wal``, ``-shm`` and ``-journal`` files the mode of
    the database file, so creating the database ourselves with 0600 (whatever
    the umask) makes those private too.
    """
    try:
        make_private_dirs(path.parent)
        _check_directory(path.parent)
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
        )
    except FileExistsError:
        created = False
    except StoreError:
        raise
    except OSError as exc:
        raise StoreError(f"{path}: cannot create the database: {reason(exc)}") from None
    else:
        try:
            os.fchmod(fd, FILE_MODE)
        finally:
            os.close(fd)
        created = True
    st = check_file(path, "database")
    for suffix in COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if not os.path.lexists(companion):
            continue
        if created:
            # SQLite would replay a leftover WAL into the new database.
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise StoreError(
                f"{companion} is left over from a database that is gone; refusing to create "
                f"{path} next to it. Fix: move {companion} away"
            )
        check_file(companion, f"database's {suffix[1:]} file")
    return st, created


def _check_directory(directory: Path) -> None:
    try:
        st = os.stat(directory)
    except OSError as exc:
        raise StoreError(f"{directory}: cannot use this directory: {reason(exc)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise StoreError(f"{directory} is not a directory; cannot keep a database there")
    if st.st_uid != os.geteuid():
        # Its owner can replace or remove anything in it, whatever the mode
        # bits say (and chmod them at will).
        raise StorePermissionError(
            f"{directory} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()}): "
            f"its owner can replace the database and its -wal file. Fix: chown "
            f"{os.geteuid()} {directory}, or keep the database in a directory of your own"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        raise StorePermissionError(
            f"{directory} has mode {mode:04o}: others can create and replace files in it "
            f"(such as the database's -wal file). Fix: chmod go-w {directory}, "
            "or keep the database in a private directory"
        )


def check_file(path: Path, what: str) -> os.stat_result:
    """``path`` must be a regular file (not a symlink) of ours, mode 0600."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise StoreError(f"{path}: cannot access the {what}: {reason(exc)}") from None
    if stat.S_ISLNK(st.st_mode):
        raise StorePermissionError(
            f"{path} is a symbolic link; the {what} must be a regular file "
            "(links are not followed). Fix: pass the real file's path instead"
        )
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{path}: the {what} is not a regular file")
    problem = owner_only_problem(st)
    mode, uid = stat.S_IMODE(st.st_mode), os.geteuid()
    if problem == "mode":
        raise StorePermissionError(
            f"{path} has mode {mode:04o}; the {what} holds private keys and must be 0600 "
            f"(owner read/write only). Fix: chmod 600 {path}"
        )
    if problem == "owner":
        raise StorePermissionError(
            f"{path} is owned by uid {st.st_uid}, not by the current user (uid {uid}). "
            f"Fix: chown {uid} {path} (as root), or use your own database"
        )
    return st


def inspect(path: Path, st: os.stat_result) -> None:
    """Refuse a file that is not an l2session database we can open.

    Reads the header, then opens the file read-only: *immutable* (no locks,
    no ``-wal``/``-shm`` created) unless a ``-wal`` file is already there,
    which holds committed transactions (a killed process) that must be read
    too.  Nothing is written either way.  An empty file is a new database.
    """
    wal = path.with_name(path.name + "-wal")
    has_wal = os.path.exists(wal) and os.path.getsize(wal) > 0
    if st.st_size == 0 and not has_wal:
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            header = os.read(fd, _HEADER_SIZE)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the database: {reason(exc)}") from None
    if st.st_size and (len(header) < _HEADER_SIZE or not header.startswith(SQLITE_MAGIC)):
        raise StoreCorrupt(
            f"{path} is not an SQLite database (wrong header: another kind of file, or "
            f"overwritten); it was not modified. Fix: check the path, or {_MOVE_AWAY}"
        )
    uri = f"file:{quote(str(path))}?mode=ro" + ("" if has_wal else "&immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open the database: {exc}") from None
    try:
        check_contents(path, conn)
        result = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as exc:
        raise corrupt(path, exc) from None
    finally:
        conn.close()
    if result != ["ok"]:
        raise StoreCorrupt(
            f"{path} is damaged ({'; '.join(map(str, result))}); it was not modified. "
            f"Fix: restore it from a backup, or {_MOVE_AWAY}"
        )


def check_contents(path: Path, conn: sqlite3.Connection) -> int:
    """The schema version of the database open on ``conn`` (0: an empty
    database, ours to initialise); raises if it is not one of ours that
    this version can use."""
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    tables = table_names(conn)
    if app_id == 0 and version == 0 and not tables:
        return 0
    if app_id != schema.APPLICATION_ID:
        shown = ", ".join(sorted(tables)[:5]) or "none"
        raise StoreForeign(
            f"{path} is an SQLite database of another application (application_id "
            f"{app_id:#010x}, tables: {shown}); it was not modified. "
            f"Fix: check the path, or {_MOVE_AWAY}"
        )
    if version > schema.SCHEMA_VERSION:
        raise StoreTooNew(
            f"{path} has schema version {version}, written by a newer l2session "
            f"(this one reads versions 1 to {schema.SCHEMA_VERSION}); it was not modified. "
            "Fix: upgrade l2session to use it, or pass another path"
        )
    problem = schema.problem(version, tables)
    if problem is not None:
        raise StoreCorrupt(f"{path}: {problem}; it was not modified. Fix: {_MOVE_AWAY}")
    assert isinstance(version, int)
    return version


def initialise(conn: sqlite3.Connection, path: Path) -> None:
    """Create the schema in an empty file, or upgrade an older one, in one
    transaction (a failure rolls back: the file stays as it was)."""
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Checked again under the write lock: the file may have changed
        # since inspect() looked at it.
        version = check_contents(path, conn)
        if version == 0:
            schema.create(conn)
        elif version < schema.SCHEMA_VERSION:
            try:
                schema.migrate(conn, version)
            except sqlite3.Error as exc:
                raise error_from(
                    path,
                    exc,
                    f"upgrading it from schema version {version} to {schema.SCHEMA_VERSION} "
                    "(rolled back: the file is unchanged)",
                ) from None
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def table_names(conn: sqlite3.Connection) -> set[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    return {row[0] for row in rows}


def corrupt(path: Path, exc: sqlite3.Error) -> StoreCorrupt:
    return StoreCorrupt(
        f"{path} is damaged or truncated (SQLite: {exc}); it was not modified. "
        f"Fix: restore it from a backup, or {_MOVE_AWAY}"
    )


def reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def error_from(path: Path, exc: sqlite3.Error, doing: str) -> StoreError:
    """The typed error for an SQLite failure while ``doing`` something."""
    name = getattr(exc, "sqlite_errorname", None) or ""
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return StoreCorrupt(
            f"{path}: the database is damaged ({exc}) while {doing}. "
            f"Fix: restore it from a backup, or {_MOVE_AWAY}"
        )
    if name == "SQLITE_FULL":
        return StoreIOError(
            f"{path}: the disk is full ({exc}) while {doing}; nothing of it was written. "
            "Fix: free some space, then commit again"
        )
    if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY")):
        return StoreIOError(
            f"{path}: the operating system failed a read or write ({exc}) while {doing}. "
            "Fix: check the disk and the file system (dmesg), then try again"
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StoreLocked(
            f"{path}: another process holds the database ({exc}) while {doing}. "
            "Fix: stop the other l2session node using this file, or use another path"
        )
    if name.startswith(("SQLITE_PERM", "SQLITE_AUTH")):
        return StorePermissionError(f"{path}: access denied ({exc}) while {doing}")
    return StoreError(f"{path}: {doing} failed: {exc}")
