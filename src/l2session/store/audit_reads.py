"""Reading the audit log and the trust statements out of the node database.

A mixin of :class:`~l2session.store.sqlite.SqliteStore` (which provides
``_reading``), kept apart so each module stays readable.  Writing happens in
the store's commit, which chains new entries to the head it reads inside
the same transaction (membrane/audit.py).
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Final

from l2session.core.states import TransitionRecord
from l2session.errors import ConfigError
from l2session.membrane import audit
from l2session.membrane.audit import AuditEntry, AuditReport

_AUDIT_ALL: Final = "SELECT id, at, kind, subject, body, digest FROM audit_log ORDER BY id"
_AUDIT_LAST: Final = (
    "SELECT id, at, kind, subject, body, digest FROM"
    " (SELECT * FROM audit_log ORDER BY id DESC LIMIT ?) ORDER BY id"
)
_TRAIL_ALL: Final = (
    "SELECT id, at, kind, subject, body, digest FROM audit_log"
    " WHERE kind = 'transition' ORDER BY id"
)
_TRAIL_LAST: Final = (
    "SELECT id, at, kind, subject, body, digest FROM (SELECT * FROM audit_log"
    " WHERE kind = 'transition' ORDER BY id DESC LIMIT ?) ORDER BY id"
)


class AuditReads:
    """``audit_trail``, ``audit_log``, ``verify_audit`` and
    ``trust_statements`` over a store's read transactions."""

    __slots__ = ()

    def _reading(self, doing: str) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def audit_trail(self, limit: int | None = None) -> list[TransitionRecord]:
        """Committed transitions, oldest first; with ``limit``, the last
        ``limit`` of them."""
        query, params = _limited(_TRAIL_ALL, _TRAIL_LAST, limit)
        with self._reading("reading the audit trail") as conn:
            out: list[TransitionRecord] = []
            for row in conn.execute(query, params):
                record = _entry(row).record()
                assert isinstance(record, TransitionRecord)
                out.append(record)
            return out

    def audit_log(self, limit: int | None = None) -> list[AuditEntry]:
        """Committed audit entries (transitions and access decisions),
        oldest first; with ``limit``, the last ``limit`` of them."""
        query, params = _limited(_AUDIT_ALL, _AUDIT_LAST, limit)
        with self._reading("reading the audit log") as conn:
            return [_entry(row) for row in conn.execute(query, params)]

    def verify_audit(self) -> AuditReport:
        """Check the audit log's hash chain from its first entry
        (membrane/audit.py), streaming: memory stays flat for any size."""
        with self._reading("verifying the audit log") as conn:
            return audit.verify(_checked(row) for row in conn.execute(_AUDIT_ALL))

    def audit_digest(self, entry_id: int) -> bytes | None:
        """The stored digest of audit entry ``entry_id`` (None: no such
        entry).  Proven only together with :meth:`verify_audit`."""
        with self._reading("reading an audit entry") as conn:
            row = conn.execute("SELECT digest FROM audit_log WHERE id = ?", (entry_id,)).fetchone()
        return None if row is None else bytes(row[0])

    def stored_did(self) -> str | None:
        """The DID of the identity kept in this store (None: none yet),
        read without the key file's passphrase."""
        with self._reading("reading the identity's DID") as conn:
            row = conn.execute("SELECT did FROM identity").fetchone()
        return None if row is None else str(row[0])

    def trust_statements(self) -> list[bytes]:
        """Every committed trust statement, as stored by ``put_trust``."""
        with self._reading("reading the trust statements") as conn:
            return [
                bytes(row[0]) for row in conn.execute("SELECT statement FROM trust ORDER BY id")
            ]


def _limited(every: str, last: str, limit: int | None) -> tuple[str, tuple[int, ...]]:
    if limit is None:
        return every, ()
    if type(limit) is int and limit >= 0:
        return last, (limit,)
    raise ConfigError(f"limit must be None or an int >= 0, got {limit!r}")


def _checked(row: tuple[int, float, str, str, str, bytes]) -> AuditEntry:
    """A row as an entry; a row whose columns have the wrong types (edited
    with a tool that ignores them) becomes an entry that cannot verify, so
    the chain check names it like any other edit."""
    entry_id, at, kind, subject, body, digest = row
    if (
        type(at) is float
        and type(kind) is str
        and type(subject) is str
        and type(body) is str
        and type(digest) is bytes
    ):
        return AuditEntry(entry_id, at, kind, subject, body, digest)
    return AuditEntry(int(entry_id), 0.0, "", "", "", b"")


def _entry(row: tuple[int, float, str, str, str, bytes]) -> AuditEntry:
    entry_id, at, kind, subject, body, digest = row
    return AuditEntry(entry_id, float(at), str(kind), str(subject), str(body), bytes(digest))
