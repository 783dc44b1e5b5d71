"""SPEC-018 §2.3 Degradation and Recovery, executed (steps for degradation_recovery.feature).

The harness reports path loss and restoration to the managers, as a real
transport would (``Simulation(report_connectivity=True)``).  DESIGN.md §2.2:
a transport-reported loss lasting longer than 30 s degrades the session
without waiting for missed heartbeats; DESIGN.md §2.8: QUIC first, μTCP when
QUIC fails, invisible above the session, without a rekey.
"""

from __future__ import annotations

import pytest
from pytest_bdd import given, scenarios, then, when

from l2session.core.events import PacketRejected, SessionClosedEvent, StateChanged
from l2session.core.states import State, Trigger
from l2session.wire.packets import (
    BundleRequest,
    DataPacket,
    HandshakePacket,
    ResumeEarlyPacket,
    ResumePacket,
)
from l2session.wire.records import Heartbeat, HeartbeatAck, Message

from .scenario_harness import EPS, LATENCY, World, record_of

scenarios("degradation_recovery.feature")


def _cut_off(world: World) -> None:
    """Alice and Bob lose each other on every path; both send meanwhile."""
    world.sim.network.partition("alice", "bob")
    world.marks["connectivity_lost"] = world.now
    world.keep()
    for i in range(3):
        world.send("alice", b"partitioned a%d" % i)
        world.send("bob", b"partitioned b%d" % i)


def _no_new_handshake(world: World, since: float) -> None:
    rekeying = [
        s
        for s in world.sent
        if s.at >= since
        and isinstance(s.packet, BundleRequest | HandshakePacket | ResumePacket | ResumeEarlyPacket)
    ]
    assert not rekeying, "the session was torn down and re-keyed"


# ----------------------------------------------------------------------
# Scenario: Network partition detection


@when("connectivity lost for >30s")
def connectivity_lost(world: World) -> None:
    _cut_off(world)
    lost = world.marks["connectivity_lost"]
    session = world.session("alice")
    timeout = session.config.connectivity_timeout
    assert timeout == 30.0
    world.sim.run_for(timeout - 0.01)
    assert session.state is State.ESTABLISHED  # not before 30 s
    world.sim.run_for(lost + timeout + 0.5 - world.now)


@then("messages are queued")
def messages_queued(world: World) -> None:
    alice = world.session("alice")
    degraded = world.marks["degraded"]
    # Sending in degraded is accepted (no error) and held, not transmitted.
    for i in range(3, 6):
        world.send("alice", b"partitioned a%d" % i)
    world.sim.run_for(5.0)
    assert alice.state is State.DEGRADED
    assert alice.queued == len(world.outbox["alice"]) == 6
    assert not world.sealed_by("alice", Message, degraded)
    world.drain()
    assert world.inbox["bob"] == []


@then("session is preserved")
def session_preserved(world: World) -> None:
    lost = world.marks["connectivity_lost"]
    world.assert_kept()
    for role in ("alice", "bob"):
        session = world.session(role)
        assert session.key_epoch == 0
        assert session.state is State.DEGRADED
    _no_new_handshake(world, lost)
    closed = [e for n in (world.alice, world.bob) for e in n.events]
    assert not [e for e in closed if isinstance(e, SessionClosedEvent)]


# ----------------------------------------------------------------------
# Scenario: Partition recovery


@given('session is "degraded"')
def session_degraded(world: World) -> None:
    world.start(report_connectivity=True)
    world.establish()
    _cut_off(world)
    world.sim.run_until(
        lambda: world.session("alice").state is world.session("bob").state is State.DEGRADED,
        timeout=40.0,
    )
    world.marks["degraded"] = record_of(world.session("alice"), State.DEGRADED).at
    # More traffic while degraded: queued, not sent.
    world.send("alice", b"degraded a")
    world.send("bob", b"degraded b")
    world.sim.run_for(10.0)
    world.drain()
    assert world.inbox == {"alice": [], "bob": []}


@when("connectivity restored")
def connectivity_restored(world: World) -> None:
    world.sim.network.heal("alice", "bob")
    world.marks["restored"] = world.now
    world.sim.run_until(world.both_established, timeout=5.0)


@then("re-establishment is attempted")
def reestablishment_attempted(world: World) -> None:
    restored = world.marks["restored"]
    # The restored path is probed at once, under the existing keys ...
    probes = world.sealed_by("alice", Heartbeat, restored)
    assert probes
    assert probes[0].at == pytest.approx(restored, abs=EPS)
    assert world.opened_by("bob", Heartbeat, restored)
    assert world.opened_by("alice", HeartbeatAck, restored) or world.opened_by(
        "alice", Heartbeat, restored
    )
    # ... and the answer brings the session back, within a round trip.
    for role in ("alice", "bob"):
        back = record_of(world.session(role), State.ESTABLISHED)
        assert back.source is State.DEGRADED
        assert back.trigger is Trigger.CONNECTIVITY_RESTORED
        assert restored <= back.at <= restored + 2 * LATENCY + EPS
    world.assert_kept()


@then("queued messages are flushed")
def queued_flushed(world: World) -> None:
    world.assert_exactly_once_in_order(timeout=10.0)
    assert world.outbox["alice"][-1] == b"degraded a"
    assert world.outbox["bob"][-1] == b"degraded b"


# ----------------------------------------------------------------------
# Scenario: Transport fallback


@given("session over QUIC")
def session_over_quic(world: World) -> None:
    world.start(report_connectivity=True)
    world.establish()
    for role in ("alice", "bob"):
        assert world.session(role).path == "quic"
    assert {s.path for s in world.sent} == {"quic"}
    world.keep()
    for node in (world.alice, world.bob):
        node.events.clear()


def _stream(world: World, start: int, count: int) -> None:
    """The application keeps talking; no call may raise."""
    for i in range(start, start + count):
        world.send("alice", b"a%03d" % i)
        world.send("bob", b"b%03d" % i)
        world.sim.run_for(0.003)


@when("QUIC fails")
def quic_fails(world: World) -> None:
    _stream(world, 0, 20)
    # UDP filtered from now on; what is on the wire is lost too.
    world.sim.network.block_path("quic", drop_in_flight=True)
    world.marks["quic_failed"] = world.now
    _stream(world, 20, 40)


@then("re-establishment over μTCP is attempted")
def over_tcp(world: World) -> None:
    failed = world.marks["quic_failed"]
    for role in ("alice", "bob"):
        assert world.session(role).path == "tcp"
    # Alice moved at once: what QUIC lost is resent over μTCP right away
    # (only what was already handed to QUIC in that instant went there) ...
    tcp = [s for s in world.sent if s.path == "tcp"]
    assert tcp
    assert min(s.at for s in tcp if s.source == "alice") == pytest.approx(failed, abs=EPS)
    # ... and from then on everything goes over μTCP.
    after = [s for s in world.sent if s.at > failed + EPS]
    assert {s.path for s in after} == {"tcp"}
    assert all(isinstance(s.packet, DataPacket) for s in world.sent if s.at >= failed)
    # μTCP carries data both ways, under the same session keys (no rekey).
    assert world.opened_by("bob", Message, failed)
    assert world.opened_by("alice", Message, failed)
    _no_new_handshake(world, failed)


@then("this is transparent to upper layers")
def transparent(world: World) -> None:
    world.assert_exactly_once_in_order(timeout=10.0)
    assert len(world.inbox["bob"]) == len(world.inbox["alice"]) == 60
    world.assert_kept(history=True)  # the same sessions, not a single state change
    for role in ("alice", "bob"):
        assert world.session(role).state is State.ESTABLISHED
    for node in (world.alice, world.bob):
        assert not [
            e
            for e in node.events
            if isinstance(e, StateChanged | SessionClosedEvent | PacketRejected)
        ]
