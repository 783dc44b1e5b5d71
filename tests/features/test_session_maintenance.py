"""SPEC-018 §2.2 Session Maintenance, executed (steps for session_maintenance.feature).

DESIGN.md §2.2 settles what the spec leaves contradictory: one missed
heartbeat is a warning, ``heartbeat_tolerance`` (3) in a row make the session
``degraded``, 60 s degraded make it ``suspended``, and a suspended session
attempts recovery every 60 s.  DESIGN.md §2.3: at key age ``ttl -
rotation_window`` (23 h) the session rotates inside itself.
"""

from __future__ import annotations

import logging

import pytest
from pytest_bdd import given, scenarios, then, when

from l2session.core.states import State, Trigger
from l2session.crypto.handshake_messages import TYPE_INIT, HandshakeInit
from l2session.testing.network import LinkProfile
from l2session.wire.packets import HandshakePacket, ResumeEarlyPacket, ResumePacket
from l2session.wire.records import (
    Heartbeat,
    HeartbeatAck,
    Message,
    RotateDone,
    RotateInit,
    RotateResponse,
)

from .scenario_harness import EPS, LATENCY, Sent, World, has_message, record_of

scenarios("session_maintenance.feature")

HOUR = 3600.0


def _last_inbound(world: World, role: str) -> float:
    """When ``role`` last received an authenticated packet (or got its keys)."""
    name = world.role[role]
    opened = [o.at for o in world.opened if o.node == name]
    return max([*opened, record_of(world.session(role), State.ESTABLISHED).at])


def _heartbeat(world: World, role: str, since: float) -> tuple[float, int]:
    """The first heartbeat ``role`` sealed at or after ``since``: (time, counter)."""
    sealed = world.sealed_by(role, Heartbeat, since)[0]
    (counter,) = [r.counter for r in sealed.records if isinstance(r, Heartbeat)]
    return sealed.at, counter


def _acked(world: World, counter: int, since: float) -> list[float]:
    """When Alice opened Bob's answer to her heartbeat ``counter``."""
    return [
        o.at
        for o in world.opened_by("alice", HeartbeatAck, since)
        if any(isinstance(r, HeartbeatAck) and r.counter == counter for r in o.records)
    ]


def _heartbeat_warnings(caplog: pytest.LogCaptureFixture, did: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.levelno == logging.WARNING
        and r.name == "l2session.session"
        and did in r.getMessage()
        and "heartbeat" in r.getMessage()
        and "missed" in r.getMessage()
    ]


# ----------------------------------------------------------------------
# Scenario: Heartbeat success


@when("30 seconds pass without activity")
def idle_30s(world: World) -> None:
    session = world.session("alice")
    idle_since = _last_inbound(world, "alice")
    world.marks["lease_before"] = session.lease_until
    start = world.now
    world.sim.run_until(lambda: bool(world.sealed_by("alice", Heartbeat, start)), timeout=31.0)
    at, counter = _heartbeat(world, "alice", start)
    # Exactly heartbeat_interval after the last sign of life from Bob ...
    assert session.config.heartbeat_interval == 30.0
    assert at - idle_since == pytest.approx(30.0, abs=EPS)
    # ... with no application traffic in between.
    assert not [s for s in world.sealed if s.at > idle_since and has_message(s)]
    world.marks["heartbeat"] = at
    world.marks["counter"] = counter


@then("heartbeat is sent")
def heartbeat_sent(world: World) -> None:
    at, counter = world.marks["heartbeat"], int(world.marks["counter"])
    (sealed,) = [s for s in world.sealed_by("alice", Heartbeat, at) if s.at == at]
    # The sealed heartbeat went on the wire to Bob ...
    assert any(s.data == sealed.data and s.destination == "bob" for s in world.sent)
    # ... and Bob authenticated it.
    world.sim.run_until(lambda: bool(world.opened_by("bob", Heartbeat, at)), timeout=1.0)
    opened = world.opened_by("bob", Heartbeat, at)[0]
    assert Heartbeat(counter) in opened.records
    assert opened.at == pytest.approx(at + LATENCY, abs=EPS)


@then("peer responds within 2 seconds")
def peer_responds(world: World) -> None:
    at, counter = world.marks["heartbeat"], int(world.marks["counter"])
    session = world.session("alice")
    assert session.config.heartbeat_timeout == 2.0
    took = world.sim.run_until(lambda: bool(_acked(world, counter, at)), timeout=2.0)
    acked = _acked(world, counter, at)[0]
    assert acked - at <= 2.0
    assert took <= 2.0
    assert world.sealed_by("bob", HeartbeatAck, at)
    world.marks["acked"] = acked
    # No miss is counted once the heartbeat timeout has passed.
    world.sim.run_for(at + 2.5 - world.now)
    assert session.heartbeat_misses == 0
    assert session.state is State.ESTABLISHED


@then("TTL is extended")
def ttl_extended(world: World) -> None:
    session = world.session("alice")
    ttl = session.config.ttl
    assert session.lease_until >= world.marks["acked"] + ttl - EPS
    assert session.lease_until - world.marks["lease_before"] >= 30.0 - EPS


# ----------------------------------------------------------------------
# Scenario: Single missed heartbeat


@given("peer misses 1 heartbeat")
def misses_one(world: World) -> None:
    world.start()
    world.establish()
    session = world.session("alice")
    assert not world.sealed_by("alice", Heartbeat)

    # Alice's next heartbeat is lost on the way, and only that one packet.
    def lose_first_heartbeat(sent: Sent) -> bytes | None:
        if world.dropped or sent.source != "alice":
            return sent.data
        if any(s.data == sent.data for s in world.sealed_by("alice", Heartbeat)):
            return None
        return sent.data

    world.tamper = lose_first_heartbeat
    world.sim.run_until(lambda: session.heartbeat_misses == 1, timeout=35.0)
    (lost,) = world.dropped
    (first,) = world.sealed_by("alice", Heartbeat)
    assert lost.data == first.data
    assert world.now == pytest.approx(first.at + session.config.heartbeat_timeout, abs=EPS)
    assert not world.opened_by("bob", Heartbeat)
    world.marks["missed"] = first.at
    world.keep()


@when("next heartbeat succeeds")
def next_heartbeat(world: World) -> None:
    missed = world.marks["missed"]
    after = missed + EPS
    # Bob's own heartbeats keep proving him alive meanwhile, so Alice's next
    # one may come up to two intervals later.
    world.sim.run_until(lambda: bool(world.sealed_by("alice", Heartbeat, after)), timeout=65.0)
    at, counter = _heartbeat(world, "alice", after)
    world.sim.run_until(lambda: bool(_acked(world, counter, at)), timeout=2.0)
    assert _acked(world, counter, at)[0] - at <= 2.0
    world.sim.run_for(2.5)


@then('session remains "established"')
def remains_established(world: World) -> None:
    for role in ("alice", "bob"):
        session = world.session(role)
        assert session.state is State.ESTABLISHED
        assert session.heartbeat_misses == 0
    # Not a single transition since the miss.
    world.assert_kept(history=True)
    assert [r.target for r in world.session("alice").history].count(State.ESTABLISHED) == 1


@then("warning is logged")
def warning_logged(world: World, caplog: pytest.LogCaptureFixture) -> None:
    (warning,) = _heartbeat_warnings(caplog, world.bob.did)
    assert "(1 of 3 tolerated)" in warning.getMessage()


# ----------------------------------------------------------------------
# Scenario: Session suspension


@given("peer misses 3 heartbeats")
def misses_three(world: World) -> None:
    # A transport that does not notice the outage (silence is the only
    # signal), so heartbeats are what detects it.
    world.start(report_connectivity=False)
    world.establish()
    world.sim.network.partition("alice", "bob")
    world.marks["partition"] = world.now
    for i in range(5):
        world.send("alice", b"held a%d" % i)
    for i in range(3):
        world.send("bob", b"held b%d" % i)
    session = world.session("alice")
    world.sim.run_until(lambda: session.heartbeat_misses == 2, timeout=70.0)
    assert session.state is State.ESTABLISHED


@when("third timeout occurs")
def third_timeout(world: World, caplog: pytest.LogCaptureFixture) -> None:
    session = world.session("alice")
    world.sim.run_until(lambda: session.heartbeat_misses == 3, timeout=35.0)
    degraded = record_of(session, State.DEGRADED)
    third = world.sealed_by("alice", Heartbeat, world.marks["partition"])[2]
    assert degraded.trigger is Trigger.MISSED_HEARTBEATS
    assert degraded.at == pytest.approx(third.at + session.config.heartbeat_timeout, abs=EPS)
    assert session.state is State.DEGRADED
    # The first two misses were warnings; the third degraded the session.
    assert len(_heartbeat_warnings(caplog, world.bob.did)) == 2


@then("queued messages are held")
def messages_held(world: World) -> None:
    alice, bob = world.session("alice"), world.session("bob")
    suspended = world.marks["suspended"]
    assert alice.queued == len(world.outbox["alice"]) == 5
    assert bob.queued == len(world.outbox["bob"]) == 3
    assert not alice.closed
    world.drain()
    assert world.inbox == {"alice": [], "bob": []}
    # Nothing is transmitted while suspended: the queue waits for recovery.
    world.sim.run_for(30.0)
    assert alice.state is State.SUSPENDED
    assert not world.sealed_by("alice", Message, suspended)
    assert alice.queued == 5


@then("recovery is attempted after 60s")
def recovery_after_60s(world: World) -> None:
    session = world.session("alice")
    suspended = world.marks["suspended"]
    assert session.config.recovery_interval == 60.0
    world.sim.run_until(lambda: session.state is not State.SUSPENDED, timeout=60.0)
    attempt = session.history[-1]
    assert (attempt.source, attempt.target) == (State.SUSPENDED, State.HANDSHAKE_INITIATED)
    assert attempt.trigger is Trigger.RETRY
    assert attempt.at == pytest.approx(suspended + 60.0, abs=EPS)
    # The attempt is on the wire (a resumption with the stored ticket).
    assert any(
        isinstance(s.packet, ResumePacket | ResumeEarlyPacket | HandshakePacket)
        for s in world.sent_by("alice", attempt.at)
    )
    # The network comes back while it runs: the session recovers and every
    # held message is delivered, once, in order, both ways.
    world.sim.network.heal("alice", "bob")
    world.sim.run_until(world.both_established, timeout=60.0)
    world.assert_exactly_once_in_order()


# ----------------------------------------------------------------------
# Scenario: Automatic key rotation


@given("session age reaches 24 hours")
def age_24h(world: World) -> None:
    """The spec's defaults: ttl 24 h, rotation window 1 h.  The keys must be
    replaced before they are 24 h old, so the session (idle, heartbeats
    only) is run up to just before key age ttl - rotation_window = 23 h."""
    world.start()
    world.establish()
    alice, bob = world.session("alice"), world.session("bob")
    config = alice.config
    assert (config.ttl, config.rotation_window) == (24 * HOUR, 1 * HOUR)
    # The lower DID rotates first (the other steps in only if it does not).
    first = alice if world.alice.did < world.bob.did else bob
    due = min(alice.rotation_due_at(), bob.rotation_due_at())
    assert due == first.rotation_due_at()
    assert due == pytest.approx(first.pq_keyed_at + config.ttl - config.rotation_window, abs=EPS)
    world.sim.run_for(due - 0.1 - world.now)
    assert alice.state is bob.state is State.ESTABLISHED
    assert alice.key_epoch == bob.key_epoch == 0
    assert world.now - alice.pq_keyed_at >= 23 * HOUR - 0.2
    world.marks["due"] = due
    assert alice.channel is not None
    world.lineage = alice.channel.lineage
    world.keep()


@when("rotation window triggers")
def rotation_window(world: World) -> None:
    """Stream messages both ways across the rotation, over a link that
    delays, reorders and loses some of them."""
    world.crypto.clear()
    world.sim.network.set_profile(LinkProfile(latency=0.005, jitter=0.004, loss=0.05))
    for i in range(60):
        world.send("alice", b"a%03d" % i)
        world.send("bob", b"b%03d" % i)
        world.sim.run_for(0.004)
    world.sim.network.set_profile(LinkProfile())
    alice, bob = world.session("alice"), world.session("bob")
    world.sim.run_until(
        lambda: alice.key_epoch == bob.key_epoch == 1 and world.both_established(),
        timeout=30.0,
    )


@then("new ephemeral keys are generated")
def new_ephemeral_keys(world: World) -> None:
    # Fresh X25519 and ML-KEM-768 key pairs, an encapsulation and a decapsulation.
    assert world.crypto["mlkem_generate"] == 1
    assert world.crypto["mlkem_encapsulate"] == 1
    assert world.crypto["mlkem_decapsulate"] == 1
    assert world.crypto["ed25519_sign"] == world.crypto["ed25519_verify"] == 2
    (init,) = {r for s in world.sealed for r in s.records if isinstance(r, RotateInit)}
    (response,) = {r for s in world.sealed for r in s.records if isinstance(r, RotateResponse)}
    handshake = next(s for s in world.sent if s.handshake_type == TYPE_INIT)
    assert isinstance(handshake.packet, HandshakePacket)
    original = HandshakeInit.decode(handshake.packet.message)
    assert init.ephemeral_dh != original.ephemeral_dh
    assert init.ephemeral_kem != original.ephemeral_kem
    assert response.ephemeral_dh not in (init.ephemeral_dh, original.ephemeral_dh)
    # The new epoch's key material differs from the old, and both sides agree on it.
    alice, bob = world.session("alice"), world.session("bob")
    assert alice.channel is not None
    assert bob.channel is not None
    assert alice.channel.lineage == bob.channel.lineage != world.lineage


@then("re-handshake is initiated")
def rehandshake(world: World) -> None:
    due = world.marks["due"]
    first = "alice" if world.alice.did < world.bob.did else "bob"
    second = "bob" if first == "alice" else "alice"
    # (A lost request is resent as is: one rotation, however many packets.)
    init = world.sealed_by(first, RotateInit)[0]
    assert init.at == pytest.approx(due, abs=EPS)
    assert world.opened_by(second, RotateInit)
    assert world.sealed_by(second, RotateResponse)
    assert world.opened_by(first, RotateResponse)
    assert world.sealed_by(first, RotateDone) or world.sealed_by(second, RotateDone)
    for role in (first, second):
        session = world.session(role)
        assert world.transitions(role)[-2:] == [
            ("established", "rotating", "time_to_rotate"),
            ("rotating", "established", "rotation_complete"),
        ]
        assert session.key_epoch == 1
        assert session.session_id == world.kept_ids[role]  # inside the same session
        assert session.pq_keyed_at > due - EPS
    assert record_of(world.session(first), State.ROTATING).at == pytest.approx(due, abs=EPS)


@then("no messages are lost")
def no_messages_lost(world: World) -> None:
    world.assert_exactly_once_in_order()
    due = world.marks["due"]
    # Messages really were in flight across the switch, under both epochs.
    epochs = {s.epoch for s in world.sealed if s.at >= due and has_message(s)}
    assert epochs == {0, 1}
