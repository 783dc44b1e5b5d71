"""The session kind travels in INIT (docs/PROTOCOL.md §2.1).

An ephemeral session opened by the initiator leaves nothing in the
responder's store, whatever the responder's own config says: no ticket, no
stored session, no queue.  The kind byte is signed, additive (a persistent
INIT is byte-identical to the original format) and extensible (Federated is
reserved; any other value is malformed).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from l2session.core.config import SessionConfig, SessionKind
from l2session.core.lifecycle.persistence import Journal
from l2session.core.states import State
from l2session.crypto.handshake_messages import (
    KIND_EPHEMERAL,
    KIND_FEDERATED,
    KIND_PERSISTENT,
    HandshakeInit,
)
from l2session.crypto.pqxdh import InitiatorHandshake
from l2session.crypto.rng import SeededRandom
from l2session.errors import AuthenticationFailed, HandshakeError, MalformedMessage
from l2session.identity.resolver import resolve_signing_key
from l2session.store.memory import MemoryStore
from l2session.store.sqlite import SqliteStore
from l2session.testing.simulation import SimNode, Simulation
from l2session.testing.vectors_ext import extensions_vector
from l2session.wire.packets import HandshakePacket, decode_packet, encode_packet


def _init_bytes(kind: int) -> bytes:
    vector = extensions_vector("kind test")["ephemeral_handshake"]
    decoded = HandshakeInit.decode(bytes.fromhex(vector["init"]))
    return replace(decoded, session_kind=kind).body() + decoded.signature


def test_persistent_init_carries_no_kind_byte() -> None:
    ephemeral = HandshakeInit.decode(_init_bytes(KIND_EPHEMERAL))
    persistent = replace(ephemeral, session_kind=KIND_PERSISTENT)
    assert len(persistent.body()) == len(ephemeral.body()) - 1
    assert ephemeral.body()[:-1] == persistent.body()
    assert ephemeral.body()[-1] == KIND_EPHEMERAL
    assert HandshakeInit.decode(persistent.encode()).session_kind == KIND_PERSISTENT


def test_federated_kind_is_reserved_and_decodes() -> None:
    assert HandshakeInit.decode(_init_bytes(KIND_FEDERATED)).session_kind == KIND_FEDERATED


@pytest.mark.parametrize("value", [0x00, 0x03, 0x7F, 0xFF])
def test_other_kind_bytes_are_malformed(value: int) -> None:
    good = _init_bytes(KIND_EPHEMERAL)
    offset = len(good) - 64 - 1
    bad = good[:offset] + bytes([value]) + good[offset + 1 :]
    with pytest.raises(MalformedMessage, match="session kind"):
        HandshakeInit.decode(bad)
    with pytest.raises(MalformedMessage, match="session kind"):
        replace(HandshakeInit.decode(good), session_kind=value or 9).body()


def _pair(
    seed: str, bob_store: Journal, *, alice_kind: SessionKind = SessionKind.EPHEMERAL
) -> tuple[Simulation, SimNode, SimNode]:
    sim = Simulation(seed)
    alice = sim.add_node("alice", config=SessionConfig(kind=alice_kind), store=MemoryStore())
    # Bob's own config says persistent: the INIT decides.
    bob = sim.add_node("bob", config=SessionConfig(), store=bob_store)
    return sim, alice, bob


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_responder_keeps_nothing_for_an_ephemeral_session(store_kind: str, tmp_path: Path) -> None:
    store: Journal = (
        MemoryStore() if store_kind == "memory" else SqliteStore.open(tmp_path / "b.db")
    )
    sim, alice, bob = _pair(f"ephemeral-{store_kind}", store)
    a = alice.manager.establish(bob.did)
    a.send(b"request")
    sim.run_until(lambda: (s := bob.session(alice)) is not None and s.available == 1, timeout=10)
    b = bob.session(alice)
    assert b is not None
    assert b.config.kind is SessionKind.EPHEMERAL
    assert b.journal is None  # never attached to the store
    assert b.receive() == b"request"
    b.send(b"response")
    sim.run_until(lambda: a.available == 1, timeout=10)
    assert a.receive() == b"response"
    sim.run_until(lambda: a.closed and b.closed, timeout=10)
    store.commit()
    snapshot = store.load()
    assert snapshot.sessions == ()
    assert snapshot.tickets == ()
    assert snapshot.outbound == {}
    assert snapshot.inbound == {}
    assert alice.did not in bob.manager.stored
    assert bob.manager.tickets == {}
    if isinstance(store, SqliteStore):
        store.close()


@pytest.mark.parametrize("store_kind", ["memory", "sqlite"])
def test_persistent_init_still_keeps_a_ticket(store_kind: str, tmp_path: Path) -> None:
    store: Journal = (
        MemoryStore() if store_kind == "memory" else SqliteStore.open(tmp_path / "b.db")
    )
    sim, alice, bob = _pair(f"persistent-{store_kind}", store, alice_kind=SessionKind.PERSISTENT)
    a = alice.manager.establish(bob.did)
    a.send(b"kept")
    sim.run_until(lambda: (s := bob.session(alice)) is not None and s.available == 1, timeout=10)
    store.commit()
    snapshot = store.load()
    assert [r.peer_did for r in snapshot.sessions] == [alice.did]
    assert len(snapshot.tickets) == 1
    if isinstance(store, SqliteStore):
        store.close()


def _ephemeral_init_packet(sim: Simulation, alice: SimNode, bob: SimNode) -> bytes:
    """An INIT packet from alice to bob asking for an ephemeral session."""
    handshake, init = InitiatorHandshake.start(
        local=alice.party.identity,
        peer_did=bob.did,
        peer_signing_key=resolve_signing_key(sim.resolver, bob.did),
        signed_prekeys=bob.party.prekeys.bundle().signed_prekeys,
        one_time_prekey=None,
        rng=SeededRandom("init"),
        now=sim.now,
        session_kind=KIND_EPHEMERAL,
    )
    return encode_packet(HandshakePacket(handshake.session_id, init))


def test_a_changed_kind_byte_fails_the_signature() -> None:
    sim = Simulation("kind-flip")
    alice = sim.add_node("alice", config=SessionConfig(kind=SessionKind.EPHEMERAL))
    bob = sim.add_node("bob")
    raw = _ephemeral_init_packet(sim, alice, bob)
    packet = decode_packet(raw)
    assert isinstance(packet, HandshakePacket)
    init = HandshakeInit.decode(packet.message)
    forged = replace(init, session_kind=KIND_FEDERATED).body() + init.signature
    bob.manager.receive_datagram(
        encode_packet(HandshakePacket(packet.session_id, forged)), "alice", "quic"
    )
    # Federated is refused before the signature: this node lacks it.
    assert bob.manager.rejections == {"HandshakeError": 1}
    assert bob.session(alice) is None
    with pytest.raises(HandshakeError, match="lacks"):
        bob.manager.accept(
            encode_packet(HandshakePacket(packet.session_id, forged)), "alice", "quic"
        )
    downgraded = replace(init, session_kind=KIND_PERSISTENT).body() + init.signature
    with pytest.raises(AuthenticationFailed):
        bob.manager.accept(
            encode_packet(HandshakePacket(packet.session_id, downgraded)), "mallory", "quic"
        )
    assert bob.session(alice) is None
    # The genuine INIT is still answered (the forger's address is quarantined).
    session = bob.manager.accept(raw, "alice", "quic")
    assert session is not None
    assert session.config.kind is SessionKind.EPHEMERAL
    assert session.state is State.HANDSHAKE_RECEIVED


def test_a_kind_that_differs_from_the_existing_session_is_refused() -> None:
    sim = Simulation("kind-mismatch")
    alice = sim.add_node("alice")
    bob = sim.add_node("bob")
    alice.manager.establish(bob.did)
    sim.run_until(
        lambda: (s := bob.session(alice)) is not None and s.state is State.ESTABLISHED, timeout=10
    )
    other = sim.add_node(
        "alice2", party=alice.party, config=SessionConfig(kind=SessionKind.EPHEMERAL)
    )
    raw = _ephemeral_init_packet(sim, other, bob)
    with pytest.raises(HandshakeError, match="persistent"):
        bob.manager.accept(raw, "alice2", "quic")
    session = bob.session(alice)
    assert session is not None
    assert session.state is State.ESTABLISHED


def test_a_node_configured_ephemeral_restores_stored_sessions_as_persistent() -> None:
    """Only persistent sessions are stored, so a restart must bring them back
    persistent even on a node whose own default kind is ephemeral; else the
    peer's next (persistent) INIT is refused as 'kind differs'."""
    sim = Simulation("restore-kind")
    store = MemoryStore()
    alice = sim.add_node("alice", store=MemoryStore())
    bob = sim.add_node("bob", config=SessionConfig(kind=SessionKind.EPHEMERAL), store=store)
    a = alice.manager.establish(bob.did)
    a.send(b"before the restart")
    sim.run_until(lambda: (s := bob.session(alice)) is not None and s.available == 1, timeout=10)
    kept = bob.session(alice)
    assert kept is not None
    assert kept.config.kind is SessionKind.PERSISTENT
    store.commit()
    bob = sim.restart("bob", store)
    restored = bob.session(alice)
    assert restored is not None
    assert restored.config.kind is SessionKind.PERSISTENT
    a.send(b"after the restart")
    sim.run_until(lambda: restored.available == 2, timeout=30)
    assert restored.state is State.ESTABLISHED
