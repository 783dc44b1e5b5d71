"""A completed rotation re-issues the resumption ticket (PROTOCOL.md §6.3, §8.3).

Without it, a ticket keeps the keying time of the handshake that issued it,
``resumable()`` refuses it once that is ``rotate_at_age`` (23 h) old, and a
long-lived node that restarts runs a full PQXDH instead of resuming.  With
it, both sides replace their ticket when the rotation completes:

    R = KDF("session rotation resumption", L, DH, SS, TH_rot)

with the lineage ``L'`` of the rotation, keyed and issued at completion,
and the ticket from before the rotation is gone on both sides.

Each restart here is a kill: the node's objects are dropped with every
uncommitted write and a new node starts from its store (in-memory or an
SQLite file), as in tests/durability/.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import pytest

from l2session.core.config import SessionConfig
from l2session.core.lifecycle import rotating
from l2session.core.lifecycle.persistence import Journal
from l2session.core.lifecycle.resumption import StoredSession, start_resume
from l2session.core.link.keyschedule import ticket_id
from l2session.core.link.session import Session
from l2session.core.states import State
from l2session.crypto.rng import SeededRandom
from l2session.store.memory import MemoryStore
from l2session.testing.recorder import record_wire
from l2session.testing.simulation import SimNode, Simulation
from l2session.wire.packets import (
    REJECT_UNKNOWN_TICKET,
    ResumeRejectPacket,
    decode_packet,
    encode_packet,
)

HOUR = 3600.0
#: The default key schedule (ttl 24 h, rotation at 23 h) with heartbeats
#: every 10 min instead of 30 s, so a simulated day takes few events.
DAYS = SessionConfig(heartbeat_interval=600.0)
VECTORS = Path(__file__).resolve().parent.parent / "vectors"

Reopen = Callable[[], Journal]


def memory_store(name: str, tmp: Path) -> tuple[Journal, Reopen]:
    store = MemoryStore()

    def reopen() -> Journal:
        store.crash()
        return store

    return store, reopen


def sqlite_store(name: str, tmp: Path) -> tuple[Journal, Reopen]:
    from l2session.store.sqlite import SqliteStore

    path = tmp / f"{name}.db"
    handles = [SqliteStore.open(path)]

    def reopen() -> Journal:
        handles[-1].crash()
        handles.append(SqliteStore.open(path))
        return handles[-1]

    return handles[0], reopen


STORES = {"memory": memory_store, "sqlite": sqlite_store}


def established(node: SimNode, peer: SimNode) -> bool:
    session = node.session(peer)
    return session is not None and session.state is State.ESTABLISHED


def pair(
    seed: str, kind: str, tmp: Path, config: SessionConfig = DAYS
) -> tuple[Simulation, dict[str, Journal], dict[str, Reopen]]:
    """Alice and Bob with durable stores and an established session (Alice
    initiated it)."""
    sim = Simulation(seed)
    stores: dict[str, Journal] = {}
    reopen: dict[str, Reopen] = {}
    for name in ("alice", "bob"):
        stores[name], reopen[name] = STORES[kind](name, tmp)
        sim.add_node(name, store=stores[name], config=config)
    alice, bob = sim.nodes["alice"], sim.nodes["bob"]
    alice.manager.establish(bob.did)
    sim.run_until(lambda: established(alice, bob) and established(bob, alice), timeout=60)
    return sim, stores, reopen


def sessions(sim: Simulation) -> tuple[Session, Session]:
    alice, bob = sim.nodes["alice"], sim.nodes["bob"]
    a, b = alice.session(bob), bob.session(alice)
    assert a is not None
    assert b is not None
    return a, b


def tickets(sim: Simulation) -> tuple[StoredSession, StoredSession]:
    """Each side's ticket for the other, after checking they agree."""
    alice, bob = sim.nodes["alice"], sim.nodes["bob"]
    ours, theirs = alice.manager.stored[bob.did], bob.manager.stored[alice.did]
    assert ours.ticket_id == theirs.ticket_id
    assert ours.resumption_secret == theirs.resumption_secret
    assert ours.lineage == theirs.lineage
    for node, ticket in ((alice, ours), (bob, theirs)):
        # One ticket per peer: the current one, nothing older.
        assert node.manager.tickets == {ticket.ticket_id: ticket}
    return ours, theirs


def rotate(sim: Simulation, by: str) -> None:
    """Node ``by`` starts a rotation now; run until both sides completed it."""
    a, b = sessions(sim)
    initiator = a if by == "alice" else b
    epoch = initiator.key_epoch
    assert epoch is not None
    assert initiator.state is State.ESTABLISHED
    assert initiator.rotation is None
    rotating.start(initiator, sim.now, "rotation under test")
    sim.run_until(
        lambda: all(
            s.key_epoch == epoch + 1 and s.rotation is None and s.state is State.ESTABLISHED
            for s in (a, b)
        ),
        timeout=30,
    )


def restart(sim: Simulation, name: str, reopen: Reopen) -> Session:
    """Kill ``name`` and start it from its store; run until the restored
    session is established on both sides (and the last handshake message
    arrived)."""
    peer = sim.nodes["bob" if name == "alice" else "alice"]
    node = sim.restart(name, reopen())
    session = node.session(peer)
    assert session is not None
    sim.run_until(lambda: established(node, peer) and established(peer, node), timeout=30)
    sim.run_for(1)
    return session


def since_restart(session: Session) -> list[str]:
    reasons = [r.reason for r in session.history]
    return reasons[reasons.index("restored from store") :]


def assert_resumed(session: Session, node: SimNode) -> None:
    """The restarted session came back by RESUME, without any PQXDH."""
    reasons = since_restart(session)
    assert any("resum" in reason for reason in reasons), reasons
    assert not any("PQXDH" in reason for reason in reasons), reasons
    assert session.resume is None
    # A resumed session keeps the key age of the ticket (the last rotation),
    # which predates the restart.
    restored_at = next(r.at for r in session.history if r.reason == "restored from store")
    assert session.pq_keyed_at < restored_at
    ticket = node.manager.stored[session.peer_did]
    assert ticket.pq_keyed_at == session.pq_keyed_at


def exchange(sim: Simulation, text: bytes) -> None:
    """A message each way on the current sessions."""
    a, b = sessions(sim)
    a.send(b"to bob: " + text)
    b.send(b"to alice: " + text)
    sim.run_until(lambda: a.available >= 1 and b.available >= 1, timeout=10)
    assert a.receive_many()[-1] == b"to alice: " + text
    assert b.receive_many()[-1] == b"to bob: " + text


# ---------------------------------------------------------------------------
# the ticket a rotation issues


@pytest.mark.parametrize("by", ["alice", "bob"])
def test_completed_rotation_replaces_the_ticket_on_both_sides(by: str, tmp_path: Path) -> None:
    sim, stores, _ = pair(f"ticket-rotation-{by}", "memory", tmp_path)
    before, _ = tickets(sim)
    rotate(sim, by)
    ours, theirs = tickets(sim)
    assert ours.ticket_id != before.ticket_id
    a, b = sessions(sim)
    # The ticket chains to the rotation's lineage and is keyed when each
    # side completed the rotation.
    assert a.channel is not None
    assert ours.lineage == a.channel.lineage
    for session, ticket in ((a, ours), (b, theirs)):
        completed = [r.at for r in session.history if r.reason == "key epoch 1"]
        assert ticket.pq_keyed_at == ticket.issued_at == session.pq_keyed_at == completed[-1]
    assert ours.peer_signing_key == b.owner.ctx.keys.identity.signing.public
    assert theirs.peer_signing_key == a.owner.ctx.keys.identity.signing.public
    # Journalled through save_ticket: the store holds the new ticket only
    # (committed before the next packet left).
    for name, ticket in (("alice", ours), ("bob", theirs)):
        assert [t.ticket_id for t in stores[name].load().tickets] == [ticket.ticket_id]


def test_every_rotation_issues_a_new_ticket(tmp_path: Path) -> None:
    sim, _, _ = pair("ticket-rotations", "memory", tmp_path)
    seen = [tickets(sim)[0].ticket_id]
    for by in ("alice", "bob", "alice", "alice", "bob"):
        rotate(sim, by)
        seen.append(tickets(sim)[0].ticket_id)
    assert len(set(seen)) == len(seen)
    alice, bob = sim.nodes["alice"], sim.nodes["bob"]
    for node in (alice, bob):
        assert not set(seen[:-1]) & set(node.manager.tickets)


def test_crossing_rotations_issue_one_ticket(tmp_path: Path) -> None:
    """Both sides start a rotation at once: the lower DID's wins, and both
    store the ticket of the rotation that happened."""
    sim, _, reopen = pair("ticket-crossing-rotations", "memory", tmp_path)
    before, _ = tickets(sim)
    a, b = sessions(sim)
    rotating.start(a, sim.now, "rotation under test")
    rotating.start(b, sim.now, "rotation under test")
    sim.run_until(
        lambda: all(
            s.key_epoch == 1 and s.rotation is None and s.state is State.ESTABLISHED for s in (a, b)
        ),
        timeout=30,
    )
    ours, _ = tickets(sim)
    assert ours.ticket_id != before.ticket_id
    assert a.channel is not None
    assert ours.lineage == a.channel.lineage
    sim.run_for(HOUR)
    session = restart(sim, "bob", reopen["bob"])
    assert_resumed(session, sim.nodes["bob"])


# ---------------------------------------------------------------------------
# a restart after rotations resumes


@pytest.mark.parametrize("victim", ["alice", "bob"])
@pytest.mark.parametrize("kind", sorted(STORES))
def test_restart_after_key_age_rotation_resumes(kind: str, victim: str, tmp_path: Path) -> None:
    """A session 25 h old (rotated at 23 h by key age) resumes after a
    restart of either side; the handshake's ticket alone would be refused."""
    assert DAYS.rotate_at_age == SessionConfig().rotate_at_age == 23 * HOUR
    sim, _, reopen = pair(f"ticket-key-age-{kind}-{victim}", kind, tmp_path)
    established_at = sim.now
    sim.run_for(25 * HOUR)
    a, b = sessions(sim)
    assert a.key_epoch == b.key_epoch == 1
    assert any(r.reason == "key age" for r in a.history + b.history)
    assert sim.now - established_at > DAYS.rotate_at_age
    ticket, _ = tickets(sim)
    assert sim.now - ticket.pq_keyed_at < DAYS.rotate_at_age

    session = restart(sim, victim, reopen[victim])
    assert_resumed(session, sim.nodes[victim])
    exchange(sim, b"after the restart")
    # The resumption consumed the rotation's ticket and issued the next one.
    assert tickets(sim)[0].ticket_id != ticket.ticket_id


@pytest.mark.parametrize("by", ["alice", "bob"])
@pytest.mark.parametrize("kind", sorted(STORES))
def test_restart_after_several_rotations_resumes(kind: str, by: str, tmp_path: Path) -> None:
    """Three rotations started by one side, 8 h apart: 24 h later the
    session is past ``rotate_at_age`` and the session's initiator (Alice)
    restarts -- the rotations' initiator or their responder."""
    sim, _, reopen = pair(f"ticket-several-{kind}-{by}", kind, tmp_path)
    established_at = sim.now
    for _ in range(3):
        sim.run_for(8 * HOUR)
        rotate(sim, by)
    a, b = sessions(sim)
    assert a.key_epoch == b.key_epoch == 3
    rotations = [r for r in a.history + b.history if r.target is State.ROTATING]
    assert len(rotations) == 6
    starter = a if by == "alice" else b
    assert [r.reason for r in starter.history if r.target is State.ROTATING] == [
        "rotation under test"
    ] * 3
    assert sim.now - established_at > DAYS.rotate_at_age
    exchange(sim, b"before the restart")
    sim.run_for(HOUR)

    session = restart(sim, "alice", reopen["alice"])
    assert_resumed(session, sim.nodes["alice"])
    exchange(sim, b"after the restart")


def test_short_rotation_age_many_rotations_then_restart_resumes(tmp_path: Path) -> None:
    """Rotations by key age every minute: the ticket follows each of them,
    so a restart long after the handshake still resumes."""
    config = SessionConfig(ttl=120, rotation_window=60, rotation_timeout=20)
    sim, _, reopen = pair("ticket-short-age", "sqlite", tmp_path, config)
    sim.run_for(400)
    a, b = sessions(sim)
    assert a.key_epoch is not None
    assert a.key_epoch == b.key_epoch
    assert a.key_epoch >= 4
    session = restart(sim, "bob", reopen["bob"])
    assert_resumed(session, sim.nodes["bob"])
    exchange(sim, b"after the restart")


@pytest.mark.parametrize("kind", sorted(STORES))
def test_both_restart_at_once_after_rotations_converge(kind: str, tmp_path: Path) -> None:
    """Both nodes restart together and both resume with the same ticket:
    the crossing attempts resolve by DID order into one resumed session."""
    sim, _, reopen = pair(f"ticket-crossing-{kind}", kind, tmp_path)
    sim.run_for(24 * HOUR)  # a rotation by key age
    rotate(sim, "bob")
    alice_did, bob_did = sim.nodes["alice"].did, sim.nodes["bob"].did
    alice = sim.restart("alice", reopen["alice"]())
    bob = sim.restart("bob", reopen["bob"]())
    sim.run_until(lambda: established(alice, bob) and established(bob, alice), timeout=60)
    a, b = alice.session(bob_did), bob.session(alice_did)
    assert a is not None
    assert b is not None
    assert a.session_id == b.session_id
    for session in (a, b):
        reasons = since_restart(session)
        assert any("resum" in reason for reason in reasons), reasons
        assert not any("PQXDH" in reason for reason in reasons), reasons
    tickets(sim)
    exchange(sim, b"after both restarted")


# ---------------------------------------------------------------------------
# the ticket from before the rotation is refused


def _stable(session: Session) -> tuple[bytes | None, int | None, State]:
    return session.session_id, session.key_epoch, session.state


def test_resume_with_the_ticket_from_before_the_rotation_is_refused(tmp_path: Path) -> None:
    """A RESUME that is valid for the pre-rotation ticket (a correct MAC:
    whoever sends it holds that ticket) is answered RESUME_REJ 'unknown
    ticket' by either side; neither session changes."""
    sim, _, _ = pair("ticket-old-refused", "memory", tmp_path)
    old, _ = tickets(sim)
    rotate(sim, "alice")
    current, _ = tickets(sim)
    a, b = sessions(sim)
    before = (_stable(a), _stable(b))
    wire = record_wire(sim)
    rng = SeededRandom("replayer")
    alice, bob = sim.nodes["alice"], sim.nodes["bob"]
    for target, source in ((bob, "alice"), (alice, "bob")):
        forged = encode_packet(start_resume(old, rng=rng, now=sim.now).packet)
        target.manager.receive_datagram(forged, source, "quic")
    sim.run_for(5)
    rejects = [decode_packet(s.data) for s in wire if s.data[1] == 0x32]
    assert rejects == [ResumeRejectPacket(old.ticket_id, REJECT_UNKNOWN_TICKET)] * 2
    assert not [s for s in wire if s.data[1] == 0x31]  # no RESUME_ACK
    assert (_stable(a), _stable(b)) == before
    assert tickets(sim)[0] == current
    exchange(sim, b"unaffected")


def test_replayed_resume_from_before_the_rotation_changes_nothing(tmp_path: Path) -> None:
    """The RESUME a restarted Alice really sent (before a later rotation),
    replayed from anywhere: never a second session or key epoch."""
    sim, _, reopen = pair("ticket-replay", "memory", tmp_path)
    wire = record_wire(sim)
    restart(sim, "alice", reopen["alice"])
    resumes = [s.data for s in wire if s.data[1] == 0x30]
    assert resumes
    rotate(sim, "bob")
    current, _ = tickets(sim)
    a, b = sessions(sim)
    before = (_stable(a), _stable(b))
    bob = sim.nodes["bob"]
    for source in ("alice", "mallory"):
        for packet in resumes:
            bob.manager.receive_datagram(packet, source, "quic")
    sim.run_for(5)
    assert (_stable(a), _stable(b)) == before
    assert tickets(sim)[0] == current
    exchange(sim, b"unaffected")


def test_restart_from_a_store_older_than_the_rotation_falls_back_to_pqxdh(
    tmp_path: Path,
) -> None:
    """Alice restarts from a backup taken before the rotation: its ticket is
    refused (the peer keeps only the rotation's), and she falls back to a
    full handshake within the same attempt."""
    sim, stores, _ = pair("ticket-stale-backup", "memory", tmp_path)
    alice_store = stores["alice"]
    assert isinstance(alice_store, MemoryStore)
    backup = copy.deepcopy(alice_store)
    old, _ = tickets(sim)
    rotate(sim, "bob")
    current, _ = tickets(sim)
    wire = record_wire(sim)
    session = restart(sim, "alice", lambda: backup)
    reasons = since_restart(session)
    assert "PQXDH complete" in reasons
    assert not any("resum" in reason for reason in reasons)
    sent = [decode_packet(s.data) for s in wire if s.data[1] in (0x30, 0x32)]
    assert ResumeRejectPacket(old.ticket_id, REJECT_UNKNOWN_TICKET) in sent
    assert tickets(sim)[0].ticket_id not in (old.ticket_id, current.ticket_id)
    exchange(sim, b"after the fallback")


# ---------------------------------------------------------------------------
# the vectors (tests/vectors/session_kat.json), from the document's text


def _kdf(label: str, *parts: bytes, length: int = 32) -> bytes:
    material = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
    hasher = blake3.blake3(material, derive_key_context="l2session v1 " + label)
    return hasher.digest(length=length)


@pytest.fixture(scope="module")
def vector() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / "session_kat.json").read_text(encoding="utf-8"))
    return data


def test_rotation_ticket_vector_follows_the_document(vector: dict[str, Any]) -> None:
    v = vector["key_schedule"]
    i = {k: bytes.fromhex(x) for k, x in v["inputs"].items() if isinstance(x, str)}
    lineage = _kdf("session lineage", i["root_key"], i["handshake_hash"])
    parts = (i["dh"], i["kem_secret"], i["transcript_hash"])
    secret = _kdf("session rotation resumption", lineage, *parts)
    assert secret.hex() == v["rotation_resumption_secret"]

    r = vector["rotation"]
    dh, kem_secret = bytes.fromhex(r["dh"]), bytes.fromhex(r["kem_secret"])
    th = bytes.fromhex(r["transcript"])
    secret = _kdf("session rotation resumption", bytes.fromhex(r["lineage"]), dh, kem_secret, th)
    ticket = r["ticket"]
    assert secret.hex() == ticket["resumption_secret"]
    assert ticket["lineage"] == r["keys"]["lineage"]
    assert _kdf("resumption ticket id", secret, length=16).hex() == ticket["ticket_id"]
    assert _kdf("resumption ticket key", secret).hex() == ticket["ticket_key"]
    assert ticket_id(secret).hex() == ticket["ticket_id"]
    # Its own label: the ticket secret is none of the epoch's keys.
    assert ticket["resumption_secret"] not in r["keys"].values()
