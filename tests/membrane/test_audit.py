"""The audit log's hash chain: every kind of tampering is found and named.

The pure chain (membrane/audit.py) is checked directly and through both
stores; the SQLite cases edit the file with plain SQL, as an attacker with
write access to it would.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2session.core.lifecycle.persistence import (
    ROUTE_CAUSES,
    ROUTE_FAILOVER,
    AuditRecord,
    RouteRecord,
)
from l2session.core.link.envelope import AccessRecord
from l2session.core.states import State, TransitionRecord, Trigger
from l2session.errors import AuditTampered, MalformedMessage
from l2session.membrane import audit
from l2session.membrane.audit import GENESIS, AuditEntry, chain, verify
from l2session.store import MemoryStore, SqliteStore

PEER = "did:key:z6MkgKvsSbUpvRPauPc586j9pdXwztcPya4x464uWLXh64yA"


def transition(n: int) -> TransitionRecord:
    return TransitionRecord(
        PEER, State.IDLE, State.HANDSHAKE_INITIATED, Trigger.INITIATE_HANDSHAKE, f"t{n}", n
    )


def access(n: int, allowed: bool = True) -> AccessRecord:
    return AccessRecord(
        PEER,
        allowed,
        "call",
        "service://payment",
        n + 1,
        "allowed" if allowed else "constraint",
        "allowed by grant 'pay'" if allowed else "quota used up",
        "pay",
        1000.5 + n,
    )


def records(n: int) -> list[AuditRecord]:
    return [transition(i) if i % 2 else access(i, allowed=i % 3 != 0) for i in range(n)]


def test_records_round_trip_through_their_entries() -> None:
    for entry, record in zip(chain(records(12), 0, GENESIS), records(12), strict=True):
        assert entry.record() == record
        assert entry.kind == ("transition" if isinstance(record, TransitionRecord) else "access")
        assert entry.subject == PEER


def test_an_intact_chain_verifies_and_reports_its_head() -> None:
    entries = chain(records(10), 0, GENESIS)
    report = verify(entries)
    assert report.ok
    assert report.count == 10
    assert report.head_id == 10
    assert report.head == entries[-1].digest
    report.raise_for_problem()  # does not raise
    assert verify([]).ok
    assert verify([]).head == GENESIS


def test_appending_in_two_parts_equals_appending_at_once() -> None:
    first = chain(records(10)[:4], 0, GENESIS)
    rest = chain(records(10)[4:], first[-1].id, first[-1].digest)
    assert first + rest == chain(records(10), 0, GENESIS)


def test_the_digest_binds_every_field() -> None:
    entry = chain(records(1), 0, GENESIS)[0]
    base = audit.link(GENESIS, entry.id, entry.at, entry.kind, entry.subject, entry.body)
    assert base == entry.digest
    variants = [
        audit.link(b"\x01" * 32, entry.id, entry.at, entry.kind, entry.subject, entry.body),
        audit.link(GENESIS, entry.id + 1, entry.at, entry.kind, entry.subject, entry.body),
        audit.link(GENESIS, entry.id, entry.at + 1e-6, entry.kind, entry.subject, entry.body),
        audit.link(GENESIS, entry.id, entry.at, "transition", entry.subject, entry.body),
        audit.link(GENESIS, entry.id, entry.at, entry.kind, entry.subject + "x", entry.body),
        audit.link(GENESIS, entry.id, entry.at, entry.kind, entry.subject, entry.body + " "),
        # Length prefixes: moving a character between fields changes the digest.
        audit.link(GENESIS, entry.id, entry.at, entry.kind + "d", entry.subject[1:], entry.body),
    ]
    assert len({base, *variants}) == len(variants) + 1


FIELDS = st.sampled_from(["at", "kind", "subject", "body", "digest"])


@given(st.integers(1, 12), st.data())
def test_any_single_edit_is_found_at_that_entry(size: int, data: st.DataObject) -> None:
    entries = chain(records(size), 0, GENESIS)
    index = data.draw(st.integers(0, size - 1))
    which = data.draw(FIELDS)
    e = entries[index]
    edited = {
        "at": replace(e, at=e.at + 1),
        "kind": replace(e, kind="transition" if e.kind == "access" else "access"),
        "subject": replace(e, subject=e.subject[:-1] + "B"),
        "body": replace(e, body=e.body.replace(":", ": ", 1)),
        "digest": replace(e, digest=bytes([e.digest[0] ^ 1]) + e.digest[1:]),
    }[which]
    entries[index] = edited
    report = verify(entries)
    assert report.first_bad == e.id
    assert report.head_id == e.id - 1  # the last good one
    with pytest.raises(AuditTampered) as caught:
        report.raise_for_problem()
    assert caught.value.entry == e.id


@given(st.integers(2, 12), st.data())
def test_deleted_inserted_and_reordered_entries_are_found(size: int, data: st.DataObject) -> None:
    entries = chain(records(size), 0, GENESIS)
    i = data.draw(st.integers(0, size - 2))
    deleted = entries[:i] + entries[i + 1 :]
    assert verify(deleted).first_bad == i + 1
    assert "missing" in verify(deleted).problem
    swapped = list(entries)
    swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
    assert verify(swapped).first_bad == i + 1
    # An insertion renumbers what follows (ids are consecutive) or reuses an id.
    forged = AuditEntry(i + 1, 5.0, "access", PEER, '{"x":1}', bytes(32))
    inserted = entries[:i] + [forged] + [replace(e, id=e.id + 1) for e in entries[i:]]
    assert verify(inserted).first_bad == i + 1


def test_a_cut_tail_verifies_but_changes_the_head() -> None:
    """The limit of an unkeyed chain, stated as a test: truncation is only
    visible against a head recorded elsewhere."""
    entries = chain(records(5), 0, GENESIS)
    cut = verify(entries[:-1])
    assert cut.ok
    assert cut.head != verify(entries).head
    assert cut.head_id == 4


def test_an_unreadable_body_is_a_typed_error() -> None:
    entry = replace(chain(records(1), 0, GENESIS)[0], body="[1, 2]")
    with pytest.raises(MalformedMessage, match="audit entry body"):
        entry.record()
    assert "unreadable body" in entry.describe()
    with pytest.raises(MalformedMessage, match="unknown kind"):
        replace(entry, kind="gossip", body="{}").record()


def test_describe_says_what_happened() -> None:
    entries = chain([access(0, allowed=False), transition(1)], 0, GENESIS)
    assert entries[0].describe() == (f"#1 {PEER} deny call service://payment: quota used up")
    assert (
        entries[1].describe() == f"#2 {PEER} idle -> handshake_initiated on initiate_handshake: t1"
    )


# --------------------------------------------------------------------------
# Through the stores


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryStore | SqliteStore:
    if request.param == "memory":
        return MemoryStore()
    return SqliteStore.open(tmp_path / "node.db")


def test_both_stores_chain_across_commits(store: MemoryStore | SqliteStore) -> None:
    for i, record in enumerate(records(9)):
        store.append_audit(record)
        if i % 4 == 3:
            store.commit()
    store.commit()
    log = store.audit_log()
    assert log == chain(records(9), 0, GENESIS)
    assert [e.record() for e in store.audit_log(3)] == records(9)[-3:]
    assert store.audit_log(0) == []
    assert store.verify_audit().ok
    assert store.verify_audit().count == 9
    assert store.audit_trail() == [r for r in records(9) if isinstance(r, TransitionRecord)]
    assert store.audit_trail(1) == [transition(7)]


def tampered(tmp_path: Path, *sql: str) -> audit.AuditReport:
    path = tmp_path / "node.db"
    with SqliteStore.open(path) as store:
        for record in records(8):
            store.append_audit(record)
        store.commit()
    conn = sqlite3.connect(path)
    for statement in sql:
        conn.execute(statement)
    conn.commit()
    conn.close()
    with SqliteStore.open(path) as store:
        return store.verify_audit()


@pytest.mark.parametrize(
    ("sql", "first_bad", "says"),
    [
        (["UPDATE audit_log SET body = replace(body, 'pay', 'PAY') WHERE id = 3"], 3, "edited"),
        (["UPDATE audit_log SET at = at + 1 WHERE id = 5"], 5, "edited"),
        (["UPDATE audit_log SET subject = 'did:key:zOther' WHERE id = 1"], 1, "edited"),
        (["UPDATE audit_log SET digest = zeroblob(32) WHERE id = 8"], 8, "edited"),
        (["DELETE FROM audit_log WHERE id = 4"], 4, "missing"),
        (["DELETE FROM audit_log WHERE id IN (1, 2)"], 1, "missing"),
        (
            [  # insert: move the tail up by one, put a forged entry in the gap
                "UPDATE audit_log SET id = -id WHERE id >= 6",
                "UPDATE audit_log SET id = -id + 1 WHERE id < 0",
                "INSERT INTO audit_log VALUES (6, 1.0, 'access', 'did:key:zX', '{}', zeroblob(32))",
            ],
            6,
            "edited, inserted",
        ),
        (
            [  # reorder: swap the contents of entries 2 and 7
                "UPDATE audit_log SET id = -2 WHERE id = 2",
                "UPDATE audit_log SET id = 2 WHERE id = 7",
                "UPDATE audit_log SET id = 7 WHERE id = -2",
            ],
            2,
            "moved",
        ),
    ],
)
def test_sqlite_tampering_is_found_and_named(
    tmp_path: Path, sql: list[str], first_bad: int, says: str
) -> None:
    report = tampered(tmp_path, *sql)
    assert report.first_bad == first_bad
    assert says in report.problem
    assert f"#{first_bad}" in report.problem


def test_an_untouched_sqlite_log_verifies(tmp_path: Path) -> None:
    report = tampered(tmp_path)
    assert report.ok
    assert report.count == 8


def test_a_second_writer_extends_the_chain_instead_of_forking_it(tmp_path: Path) -> None:
    """Each commit chains to the head it reads inside its own transaction."""
    path = tmp_path / "node.db"
    with SqliteStore.open(path) as a, SqliteStore.open(path) as b:
        a.append_audit(transition(1))
        a.commit()
        b.append_audit(transition(2))
        b.commit()
        a.append_audit(transition(3))
        a.commit()
        assert a.verify_audit().count == 3
        assert a.verify_audit().ok


@given(
    st.text(max_size=40),
    st.one_of(st.none(), st.text(max_size=20)),
    st.booleans(),
    st.integers(1, 1_000_000),
)
def test_the_hand_written_body_is_canonical_json(
    reason: str, grant: str | None, allowed: bool, units: int
) -> None:
    import json

    record = AccessRecord(
        PEER, allowed, "call", "service://x", units, "allowed", reason, grant, 1.0
    )
    kind, subject, at, body = audit.encode_record(record)
    fields = {
        "allowed": allowed,
        "action": "call",
        "resource": "service://x",
        "units": units,
        "step": "allowed",
        "reason": reason,
        "grant": grant,
    }
    assert body == json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert audit.decode_record(kind, subject, at, body) == record
    t = TransitionRecord(PEER, State.IDLE, None, Trigger.CLEANUP, reason, 2.0)
    body = audit.encode_record(t)[3]
    assert body == json.dumps(
        {"from": "idle", "to": None, "trigger": "cleanup", "reason": reason},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


@given(st.text(max_size=30), st.text(max_size=30), st.sampled_from(ROUTE_CAUSES))
def test_a_route_change_body_is_canonical_json_and_round_trips(
    address: str, previous: str, cause: str
) -> None:
    import json

    record = RouteRecord(PEER, address, "tcp", previous, "quic", cause, 3.5)
    kind, subject, at, body = audit.encode_record(record)
    assert kind == audit.KIND_ROUTE
    fields = {
        "address": address,
        "path": "tcp",
        "previous_address": previous,
        "previous_path": "quic",
        "cause": cause,
    }
    assert body == json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert audit.decode_record(kind, subject, at, body) == record


def test_a_route_entry_with_an_unknown_cause_does_not_decode() -> None:
    record = RouteRecord(PEER, "b:1", "tcp", "b:1", "quic", ROUTE_FAILOVER, 1.0)
    kind, subject, at, body = audit.encode_record(record)
    with pytest.raises(MalformedMessage, match="unknown route cause 'teleport'"):
        audit.decode_record(kind, subject, at, body.replace(ROUTE_FAILOVER, "teleport"))


def test_a_route_entry_reads_as_one_line() -> None:
    record = RouteRecord(PEER, "10.0.0.2:7", "tcp", "10.0.0.2:7", "quic", ROUTE_FAILOVER, 1.0)
    entry = audit.chain([record], 0, audit.GENESIS)[0]
    assert entry.describe() == (f"#1 {PEER} route failover: quic 10.0.0.2:7 -> tcp 10.0.0.2:7")


@pytest.mark.parametrize("column", ["at = 'garbage'", "digest = 'abc'", "body = 7"])
def test_a_column_of_the_wrong_type_is_named_like_an_edit(tmp_path: Path, column: str) -> None:
    report = tampered(tmp_path, f"UPDATE audit_log SET {column} WHERE id = 6")
    assert report.first_bad == 6
    assert "#6" in report.problem
