"""Upgrading a version 1 database (tests/store/schema_v1.sql, frozen).

The fixture is a database as version 1 wrote it, rows included.  Opening it
must upgrade it to the current version in one transaction, keep every row,
and end with exactly the schema a new database gets; a migration that fails
half-way must leave the version 1 file byte for byte as it was.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2session.core.lifecycle.persistence import SessionRecord, StoredInbound
from l2session.core.lifecycle.resumption import StoredSession
from l2session.crypto.rng import SeededRandom
from l2session.errors import StoreCorrupt, StoreError
from l2session.identity.identity import Identity
from l2session.store import SqliteStore, schema
from l2session.store.files import initialise

from .helpers import PEER_A, PEER_C, companions, sha256, transition

FIXTURE = Path(__file__).with_name("schema_v1.sql")
#: The fixture's own identity (an unencrypted key file).
ME = "did:key:z6MkgKvsSbUpvRPauPc586j9pdXwztcPya4x464uWLXh64yA"


def fixture_peer() -> Identity:
    """PEER_A, as the fixture's ticket was made: the second identity drawn."""
    rng = SeededRandom("schema v1 fixture")
    Identity.generate(rng)
    peer = Identity.generate(rng)
    assert peer.did_text == PEER_A
    return peer


def version_1(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(FIXTURE.read_text())
    conn.close()
    path.chmod(0o600)
    return path


def shape(path: Path) -> dict[str, Any]:
    """Tables, columns, indexes and foreign keys: the schema minus whitespace."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    out: dict[str, Any] = {}
    for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'"):
        indexes = {
            row[1]: (row[2], [c[2] for c in conn.execute(f"PRAGMA index_info('{row[1]}')")])
            for row in conn.execute(f"PRAGMA index_list('{name}')")
        }
        out[name] = (
            list(conn.execute(f"PRAGMA table_info('{name}')")),
            sorted(indexes.items()),
            list(conn.execute(f"PRAGMA foreign_key_list('{name}')")),
        )
    conn.close()
    return out


def test_the_fixture_is_version_1(tmp_path: Path) -> None:
    path = version_1(tmp_path / "v1.db")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("PRAGMA application_id").fetchone()[0] == schema.APPLICATION_ID
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    conn.close()
    assert tables == schema.TABLES[1]
    assert "audit" not in tables


def test_a_version_1_database_is_upgraded_with_every_row(tmp_path: Path) -> None:
    path = version_1(tmp_path / "v1.db")
    with SqliteStore.open(path) as store:
        snap = store.load()
        assert snap.sessions == (
            SessionRecord(
                PEER_A, "192.0.2.7:4433", "quic", 0x1122334455667788, 45, 0xF0E0D0C0B0A09080, 8
            ),
        )
        assert snap.outbound == {PEER_A: [(seq, b"message %d" % seq) for seq in (42, 43, 44)]}
        assert snap.inbound == {
            PEER_A: [
                StoredInbound(0x0102030405060708, 7, b"old 7"),
                StoredInbound(0xF0E0D0C0B0A09080, 9, b"early 9"),
                StoredInbound(0xF0E0D0C0B0A09080, 10, b"early 10"),
            ]
        }
        assert snap.tickets == (
            StoredSession(
                local_did=ME,
                peer_did=PEER_A,
                peer_signing_key=fixture_peer().signing_public,
                resumption_secret=bytes(range(32)),
                lineage=bytes(range(32, 64)),
                pq_keyed_at=1_800_000_000.0,
                issued_at=1_800_000_100.5,
                out_stream=0x1122334455667788,
                in_stream=0xF0E0D0C0B0A09080,
            ),
        )
        assert snap.prekeys == b"prekeys v1 fixture"
        assert store.load_identity().did_text == ME
        # The new table works, and the old rows keep working.
        assert store.audit_trail() == []
        store.append_audit(transition(1))
        store.ack_outbound(PEER_A, 44, ())
        store.put_inbound(PEER_C, 1, 0, b"new peer")
    with SqliteStore.open(path) as store:
        assert store.audit_trail() == [transition(1)]
        assert store.load().outbound == {PEER_A: [(44, b"message 44")]}
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    conn.close()


def test_an_upgraded_database_has_the_schema_of_a_new_one(tmp_path: Path) -> None:
    upgraded = version_1(tmp_path / "v1.db")
    SqliteStore.open(upgraded).close()
    fresh = tmp_path / "new.db"
    SqliteStore.open(fresh).close()
    assert shape(upgraded) == shape(fresh)
    ours = {name for name in shape(fresh) if not name.startswith("sqlite_")}
    assert ours == schema.TABLES[schema.SCHEMA_VERSION]


def test_the_upgrade_runs_inside_one_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = version_1(tmp_path / "v1.db")
    seen: list[bool] = []
    real = schema.migrate

    def watched(conn: sqlite3.Connection, version: int) -> None:
        seen.append(conn.in_transaction)
        conn.set_trace_callback(lambda sql: seen.append(conn.in_transaction))
        try:
            real(conn, version)
        finally:
            conn.set_trace_callback(None)

    monkeypatch.setattr(schema, "migrate", watched)
    SqliteStore.open(path).close()
    assert len(seen) >= 3  # entered, and every statement it ran
    assert all(seen)


def test_a_failed_upgrade_leaves_the_version_1_file_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = version_1(tmp_path / "v1.db")
    digest = sha256(path)
    broken = (*schema.MIGRATIONS[1], "CREATE TABLE peers (id INTEGER)")  # fails: exists
    monkeypatch.setitem(schema.MIGRATIONS, 1, broken)
    with pytest.raises(
        StoreError, match=f"from schema version 1 to {schema.SCHEMA_VERSION}"
    ) as caught:
        SqliteStore.open(path)
    assert "unchanged" in str(caught.value)
    assert sha256(path) == digest
    assert companions(path) == []
    monkeypatch.undo()
    with SqliteStore.open(path) as store:  # the real upgrade still works
        assert store.load().prekeys == b"prekeys v1 fixture"


def test_initialise_creates_nothing_when_the_check_fails(tmp_path: Path) -> None:
    """Checked again under the write lock: a file that turned foreign
    between the first look and the lock is still refused."""
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE contacts (name TEXT)")
    with pytest.raises(StoreError, match="another application"):
        initialise(conn, path)
    assert not conn.in_transaction
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_schema")] == ["contacts"]
    conn.close()


def version_2(path: Path) -> Path:
    """The v1 fixture upgraded by the frozen version 2 step, with audit rows
    as version 2 wrote them and payloads that start with 0xFF."""
    version_1(path)
    conn = sqlite3.connect(path)
    for statement in schema.MIGRATIONS[1]:
        assert isinstance(statement, str)
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 2")
    conn.executemany(
        "INSERT INTO audit (subject, source, target, trigger, reason, at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                r.subject,
                r.source.value,
                None if r.target is None else r.target.value,
                r.trigger.value,
                r.reason,
                r.at,
            )
            for r in (transition(1), transition(2), transition(3))
        ],
    )
    off = schema.U64_OFFSET
    conn.execute("UPDATE outbound SET payload = X'FF01AB' WHERE seq = ?", (43 - off,))
    conn.execute("UPDATE inbound SET payload = X'FF' WHERE seq = ?", (9 - off,))
    conn.commit()
    conn.close()
    return path


def test_a_version_2_audit_trail_is_chained_and_ff_payloads_escaped(tmp_path: Path) -> None:
    path = version_2(tmp_path / "v2.db")
    with SqliteStore.open(path) as store:
        assert store.audit_trail() == [transition(1), transition(2), transition(3)]
        report = store.verify_audit()
        assert report.ok
        assert report.count == 3
        snap = store.load()
        # Bodies that start with 0xFF are envelopes now: the old payloads
        # carry the escape prefix, so they still read as the same payload.
        assert dict(snap.outbound[PEER_A])[43] == b"\xff\x00\xff\x01\xab"
        assert dict(snap.outbound[PEER_A])[42] == b"message 42"
        assert [m.payload for m in snap.inbound[PEER_A] if m.seq == 9] == [b"\xff\x00\xff"]
        store.append_audit(transition(4))
        store.commit()
        assert store.verify_audit().count == 4
    SqliteStore.open(tmp_path / "new.db").close()
    assert shape(path) == shape(tmp_path / "new.db")


def version_3(path: Path) -> Path:
    """The v2 fixture upgraded by the frozen version 3 step (what a node of
    schema version 3 left behind)."""
    version_2(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for statement in schema.MIGRATIONS[2]:
        if isinstance(statement, str):
            conn.execute(statement)
        else:
            statement(conn)
    conn.execute("PRAGMA user_version = 3")
    conn.execute("COMMIT")
    conn.close()
    return path


def test_a_version_3_database_gains_the_handshake_replay_guard(tmp_path: Path) -> None:
    path = version_3(tmp_path / "v3.db")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.close()
    with SqliteStore.open(path) as store:
        snap = store.load()
        assert snap.handshake_guard == ()
        assert snap.prekeys == b"prekeys v1 fixture"  # the rest is untouched
        assert store.verify_audit().count == 3
        store.remember_init(b"did+ephemeral", 1_800_000_300.0, 1_800_000_000.0)
        store.commit()
    with SqliteStore.open(path) as store:
        assert store.load_handshake_guard() == ((b"did+ephemeral", 1_800_000_300.0),)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    conn.close()
    SqliteStore.open(tmp_path / "new.db").close()
    assert shape(path) == shape(tmp_path / "new.db")


def version_4(path: Path) -> Path:
    """The version 3 file upgraded by the frozen version 4 step: one outbound
    row per message, as versions 1 to 4 wrote them, for two peers (one at
    the top of the u64 range)."""
    version_3(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN")
    for statement in schema.MIGRATIONS[3]:
        if isinstance(statement, str):
            conn.execute(statement)
        else:
            statement(conn)
    conn.execute("PRAGMA user_version = 4")
    peer_b = conn.execute("INSERT INTO peers (did) VALUES (?)", (PEER_C,)).lastrowid
    off = schema.U64_OFFSET
    conn.executemany(
        "INSERT INTO outbound (peer, seq, payload) VALUES (?, ?, ?)",
        [(peer_b, seq - off, b"top %d" % seq) for seq in (2**64 - 3, 2**64 - 2, 2**64 - 1)],
    )
    conn.execute("COMMIT")
    conn.close()
    return path


def test_a_version_4_outbound_queue_becomes_one_batch_per_peer(tmp_path: Path) -> None:
    path = version_4(tmp_path / "v4.db")
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 4
    assert conn.execute("SELECT count(*) FROM outbound").fetchone()[0] == 6
    conn.close()
    with SqliteStore.open(path) as store:
        snap = store.load()
        assert snap.outbound == {
            PEER_A: [(42, b"message 42"), (43, b"\xff\x00\xff\x01\xab"), (44, b"message 44")],
            PEER_C: [(seq, b"top %d" % seq) for seq in (2**64 - 3, 2**64 - 2, 2**64 - 1)],
        }
        # Acknowledging part of an upgraded batch keeps the rest, across a reopen.
        store.ack_outbound(PEER_A, 43, ())
        store.ack_outbound(PEER_C, 0, ((2**64 - 2, 2**64 - 1),))
        store.put_outbound(PEER_A, 45, b"new 45")
    with SqliteStore.open(path) as store:
        assert store.load().outbound == {
            PEER_A: [(43, b"\xff\x00\xff\x01\xab"), (44, b"message 44"), (45, b"new 45")],
            PEER_C: [
                (2**64 - 3, b"top 18446744073709551613"),
                (2**64 - 1, b"top 18446744073709551615"),
            ],
        }
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    assert "outbound" not in tables
    # One row per peer from the upgrade, one for the commit that put 45.
    assert conn.execute("SELECT count(*) FROM outbound_batches").fetchone()[0] == 3
    conn.close()
    SqliteStore.open(tmp_path / "new.db").close()
    assert shape(path) == shape(tmp_path / "new.db")


def test_batches_go_only_when_the_cumulative_ack_covers_them(tmp_path: Path) -> None:
    with SqliteStore.open(tmp_path / "node.db") as store:
        for seq in range(10):
            store.put_outbound(PEER_A, seq, b"m%d" % seq)
        store.commit()  # one batch: 0..9
        for seq in range(10, 20):
            store.put_outbound(PEER_A, seq, b"m%d" % seq)
        store.commit()  # another: 10..19
        store.ack_outbound(PEER_A, 5, ((12, 15),))  # partly SACKed, partly acked
        store.commit()
        kept = [s for s, _ in store.load().outbound[PEER_A]]
        assert kept == [5, 6, 7, 8, 9, 10, 11, 15, 16, 17, 18, 19]
        conn = sqlite3.connect(tmp_path / "node.db")
        assert conn.execute("SELECT count(*) FROM outbound_batches").fetchone()[0] == 2
        store.ack_outbound(PEER_A, 10, ())
        store.commit()
        assert conn.execute("SELECT count(*) FROM outbound_batches").fetchone()[0] == 1
        store.ack_outbound(PEER_A, 20, ())
        store.commit()
        assert conn.execute("SELECT count(*) FROM outbound_batches").fetchone()[0] == 0
        # The floor is all that is left of the acknowledgements.
        assert conn.execute("SELECT count(*) FROM outbound_acked").fetchone()[0] == 1
        conn.close()
        assert store.load().outbound == {}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.binary(max_size=40)), max_size=8))
def test_a_batch_blob_round_trips(messages: list[tuple[int, bytes]]) -> None:
    assert schema.decode_batch(schema.encode_batch(messages)) == messages


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_a_damaged_batch_blob_raises_only_value_error(blob: bytes) -> None:
    try:
        decoded = schema.decode_batch(blob)
    except ValueError:
        return
    assert schema.encode_batch(decoded) == blob


def test_a_damaged_batch_in_the_file_is_reported_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "node.db"
    with SqliteStore.open(path) as store:
        store.put_outbound(PEER_A, 1, b"one")
        store.commit()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE outbound_batches SET messages = X'0000000000000001000000FF'")
    conn.commit()
    conn.close()
    with SqliteStore.open(path) as store, pytest.raises(StoreCorrupt, match="outbound batch"):
        store.load()
