"""Two (or three) real nodes over the seeded mock network on virtual time:
delivery under chaos, rotation, resumption, crossing handshakes, ephemeral
sessions, backpressure, capabilities and hostile bytes."""

from __future__ import annotations

import pytest

from l2session.core.config import SessionConfig, SessionKind
from l2session.core.events import SessionAccepted
from l2session.core.link.session import Session
from l2session.core.management.context import Context
from l2session.core.management.manager import SessionManager
from l2session.core.states import State
from l2session.crypto.rng import SeededRandom
from l2session.errors import (
    InvalidState,
    MissingCapability,
    QueueFull,
    SessionTimeout,
    TransportFailed,
)
from l2session.testing.network import LinkProfile
from l2session.testing.simulation import SimNode, Simulation, connected_pair

SHORT = SessionConfig(ttl=120, rotation_window=60, rotation_timeout=20)


def _drain(session: Session, into: list[bytes]) -> None:
    while (message := session.try_receive()) is not None:
        into.append(message)


def _pair_sessions(alice: SimNode, bob: SimNode) -> tuple[Session, Session]:
    a, b = alice.session(bob), bob.session(alice)
    assert a is not None
    assert b is not None
    return a, b


def test_chaos_exactly_once_in_order_across_rotations() -> None:
    """Random loss, duplication and reordering over thousands of messages
    each way and several rotations: nothing lost, nothing doubled, order kept."""
    chaos = LinkProfile(latency=0.01, jitter=0.01, loss=0.2, duplicate=0.1, reorder=0.2)
    sim, alice, bob = connected_pair("chaos", profile=chaos, config=SHORT)
    a, b = _pair_sessions(alice, bob)
    total = 2500
    got_a: list[bytes] = []
    got_b: list[bytes] = []
    sent = 0
    for _ in range(5000):
        for _ in range(3):
            if sent < total:
                a.send(b"a%d" % sent)
                b.send(b"b%d" % sent)
                sent += 1
        sim.run_for(0.25)
        _drain(b, got_b)
        _drain(a, got_a)
        if sent == total and len(got_a) == len(got_b) == total:
            break
    assert got_b == [b"a%d" % i for i in range(total)]
    assert got_a == [b"b%d" % i for i in range(total)]
    assert a.key_epoch == b.key_epoch
    assert a.key_epoch is not None
    assert a.key_epoch >= 3
    rotations = [r for r in a.history if r.target is State.ROTATING]
    assert len(rotations) >= 3
    assert a.state is State.ESTABLISHED
    assert b.state is State.ESTABLISHED
    # The network really did misbehave.
    stats = sim.network.stats
    assert stats.dropped_loss > 100
    assert stats.duplicated > 100
    assert stats.reordered > 100


def test_rotation_mixes_fresh_keys_and_keeps_session_id() -> None:
    sim, alice, bob = connected_pair("rotation", config=SHORT)
    a, b = _pair_sessions(alice, bob)
    session_id = a.session_id
    assert a.channel is not None
    lineage_before = a.channel.lineage
    sim.run_for(65)
    assert a.key_epoch == b.key_epoch == 1
    assert a.session_id == session_id == b.session_id
    assert a.channel is not None
    assert b.channel is not None
    assert a.channel.lineage != lineage_before
    assert a.channel.lineage == b.channel.lineage
    a.send(b"after rotation")
    sim.run_until(lambda: b.available == 1, timeout=5)
    assert b.receive() == b"after rotation"


def test_rotation_timeout_fails_and_keeps_the_queue() -> None:
    sim, alice, bob = connected_pair("rotation-timeout", config=SHORT)
    a, _ = _pair_sessions(alice, bob)
    sim.run_for(59)
    sim.network.partition("alice", "bob")
    a.send(b"held")
    sim.run_until(lambda: a.state is State.FAILED, timeout=60)
    assert a.failure_reason == "rotation_timeout"
    assert a.queued == 1
    assert a.retry_at is not None


def test_volume_limit_forces_rotation() -> None:
    config = SessionConfig(rekey_after_messages=50)
    sim, alice, bob = connected_pair("volume", config=config)
    a, b = _pair_sessions(alice, bob)
    for i in range(120):
        a.send(b"%d" % i)
        sim.run_for(0.05)
    sim.run_for(2)
    reasons = [r.reason for r in a.history + b.history if r.target is State.ROTATING]
    assert "volume limit" in reasons
    assert a.key_epoch is not None
    assert a.key_epoch >= 1
    got: list[bytes] = []
    _drain(b, got)
    assert got == [b"%d" % i for i in range(120)]


def test_resumption_after_restart_is_one_round_trip_and_single_use() -> None:
    sim, alice, bob = connected_pair("resume")
    stored = alice.manager.stored[bob.did]
    a, _ = _pair_sessions(alice, bob)
    a.close("restart")
    restarted = sim.add_node("alice-2", party=alice.party)
    sim.directory.addresses[bob.did] = "bob"  # type: ignore[index]
    recorded: list[bytes] = []
    original = sim.network.send

    def record(
        source: str, destination: str, path: str, data: bytes | bytearray | memoryview, now: float
    ) -> None:
        if data[1] == 0x30:
            recorded.append(bytes(data))
        original(source, destination, path, data, now)

    sim.network.send = record  # type: ignore[method-assign]
    session = restarted.manager.resume(bob.did, stored)
    took = sim.run_until(lambda: session.state is State.ESTABLISHED, timeout=1)
    assert took <= 0.1
    assert [r.reason for r in session.history][-1] == "resumed"
    # The same RESUME again (a replay) is answered from memory, never with
    # a second session or a second key epoch.
    bob_session = bob.session(alice)
    assert bob_session is not None
    before = bob_session.session_id
    bob.manager.receive_datagram(recorded[0], "mallory", "quic")
    assert bob_session.session_id == before
    assert bob.manager.tickets.get(stored.ticket_id) is None
    # Messages flow both ways on the resumed session.
    session.send(b"hello again")
    sim.run_until(lambda: bob_session.available == 1, timeout=2)
    assert bob_session.receive() == b"hello again"


def test_crossing_handshakes_end_in_one_session_each() -> None:
    sim = Simulation("crossing")
    alice, bob = sim.add_node("alice"), sim.add_node("bob")
    a = alice.manager.establish(bob.did)
    b = bob.manager.establish(alice.did)
    sim.run_until(lambda: a.state is State.ESTABLISHED and b.state is State.ESTABLISHED, timeout=30)
    assert a.session_id == b.session_id
    a.send(b"x")
    b.send(b"y")
    sim.run_until(lambda: a.available == 1 and b.available == 1, timeout=5)
    assert (a.receive(), b.receive()) == (b"y", b"x")


def test_ephemeral_session_is_one_request_one_response() -> None:
    config = SessionConfig(kind=SessionKind.EPHEMERAL)
    sim = Simulation("ephemeral")
    alice = sim.add_node("alice", config=config)
    bob = sim.add_node("bob", config=config)
    a = alice.manager.establish(bob.did)
    a.send(b"request")
    with pytest.raises(InvalidState):
        a.send(b"second request")
    sim.run_until(lambda: (s := bob.session(alice)) is not None and s.available == 1, timeout=10)
    b = bob.session(alice)
    assert b is not None
    assert b.receive() == b"request"
    b.send(b"response")
    sim.run_until(lambda: a.available == 1, timeout=10)
    assert a.receive() == b"response"
    sim.run_until(lambda: a.closed and b.closed, timeout=10)
    assert bob.did not in alice.manager.stored  # nothing kept
    assert alice.did not in bob.manager.stored


def test_send_raises_queue_full_and_drops_nothing() -> None:
    config = SessionConfig(max_queued=10)
    sim, alice, bob = connected_pair("backpressure", config=config)
    a, b = _pair_sessions(alice, bob)
    sim.network.partition("alice", "bob")
    for i in range(10):
        a.send(b"%d" % i)
    with pytest.raises(QueueFull):
        a.send(b"one too many")
    sim.network.heal("alice", "bob")
    sim.run_until(lambda: b.available == 10, timeout=30)
    assert [b.receive() for _ in range(10)] == [b"%d" % i for i in range(10)]
    with pytest.raises(SessionTimeout):
        b.receive()


def test_missing_capabilities_are_named() -> None:
    sim = Simulation("caps")
    bob = sim.add_node("bob")
    ctx = Context(rng=SeededRandom("caps"), time=sim.clock)
    manager = SessionManager(ctx)
    with pytest.raises(MissingCapability, match="net_connect, crypto_pqxdh, did_resolve"):
        manager.establish(bob.did)


def test_unknown_peer_address_is_a_clear_error() -> None:
    sim = Simulation("unknown")
    alice = sim.add_node("alice")
    with pytest.raises(TransportFailed, match="no address is known"):
        alice.manager.establish("did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")


def test_hostile_packets_are_counted_and_change_nothing() -> None:
    sim, alice, bob = connected_pair("hostile")
    a, b = _pair_sessions(alice, bob)
    rng = SeededRandom("garbage")
    for size in (0, 1, 2, 17, 40, 100, 1500):
        bob.manager.receive_datagram(rng.random_bytes(size), "mallory", "quic")
    assert a.session_id is not None
    forged = bytes([1, 0x20]) + a.session_id + bytes(4) + rng.random_bytes(120)
    bob.manager.receive_datagram(forged, "mallory", "quic")
    assert sum(bob.manager.rejections.values()) == 8
    assert b.state is State.ESTABLISHED
    a.send(b"still fine")
    sim.run_until(lambda: b.available == 1, timeout=5)
    assert b.receive() == b"still fine"


def test_three_nodes_each_pair_independent() -> None:
    sim = Simulation("three")
    nodes = [sim.add_node(name) for name in ("alice", "bob", "carol")]
    sessions = [
        nodes[0].manager.establish(nodes[1].did),
        nodes[1].manager.establish(nodes[2].did),
        nodes[2].manager.establish(nodes[0].did),
    ]
    sim.run_until(lambda: all(s.state is State.ESTABLISHED for s in sessions), timeout=30)
    accepted = [e for n in nodes for e in n.events if isinstance(e, SessionAccepted)]
    assert len(accepted) == 3
    sim.network.partition("alice", "bob")
    sim.run_for(100)
    assert sessions[0].state is State.DEGRADED or sessions[0].state is State.SUSPENDED
    assert sessions[1].state is State.ESTABLISHED


def test_tick_work_is_proportional_to_due_timers(monkeypatch: pytest.MonkeyPatch) -> None:
    sim, alice, _ = connected_pair("timers")
    manager = alice.manager
    deadline = manager.get_timer()
    assert deadline is not None
    assert deadline > sim.now
    calls = 0
    original = Session.on_timer

    def counting(self: Session, now: float) -> None:
        nonlocal calls
        calls += 1
        original(self, now)

    monkeypatch.setattr(Session, "on_timer", counting)
    for _ in range(100):
        manager.tick()
    assert calls == 0  # nothing due: no session touched
    # Deadlines move later without the heap noticing (traffic pushes the
    # heartbeat back): an entry that comes due for a session whose real
    # deadline is later re-arms it there, without running on_timer.
    (session,) = manager.sessions.values()
    real = session.next_deadline()
    assert real is not None
    for due in sorted({deadline, real}):
        sim.clock.set(due)
        manager.tick()
        assert calls == (1 if due >= real else 0)
    rearmed = manager.get_timer()
    assert rearmed is not None
    assert rearmed > real
