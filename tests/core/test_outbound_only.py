"""Outbound-only peers in the core (SessionManager.outbound_only): a peer
that does not listen where its packets come from is reached only over its
live connection.  When that is lost, the session neither falls back to
another transport at that address nor retries: it waits, degraded then
suspended (SPEC-018 timeouts), until the peer comes back by itself."""

from __future__ import annotations

from dataclasses import replace

from l2session.core.config import SessionConfig
from l2session.core.link.session import Session
from l2session.core.states import State
from l2session.testing.recorder import record_wire
from l2session.testing.simulation import Simulation
from l2session.wire.packets import PKT_DATA

CONFIG = replace(
    SessionConfig(),
    heartbeat_interval=1.0,
    heartbeat_timeout=0.5,
    connectivity_timeout=2.0,
    degraded_timeout=3.0,
    recovery_interval=2.0,
)


def test_an_outbound_only_peer_is_waited_for_not_dialled() -> None:
    sim = Simulation("outbound-only", report_connectivity=True)
    alice = sim.add_node("alice", config=CONFIG)
    bob = sim.add_node("bob", config=CONFIG)
    bob.manager.outbound_only = lambda address: address == "alice"
    alice.manager.establish(bob.did)

    def bobs() -> Session | None:
        return bob.session(alice)

    sim.run_until(lambda: (s := bobs()) is not None and s.state is State.ESTABLISHED, timeout=10)
    session = bobs()
    assert session is not None
    assert session.race is None
    wire = record_wire(sim)
    sim.network.partition("alice", "bob")  # alice is gone, and her connection
    session.send(b"while alice is away")
    sim.run_until(lambda: session.state is State.SUSPENDED, timeout=30)
    assert session.path == "quic"  # no fallback to tcp at alice's port
    assert session.retry_at is None
    lost_at = sim.now
    sim.run_for(20)  # many recovery intervals: bob never starts an attempt
    from_bob = [s for s in wire if s.source == "bob"]
    assert from_bob  # it still answers on the route it had (dropped here)
    assert all(s.path == "quic" for s in from_bob)
    assert not [s for s in from_bob if s.data[0] != PKT_DATA and s.at > lost_at]
    assert session.state is State.SUSPENDED
    # Alice comes back by herself (her own recovery reaches bob's address).
    sim.network.heal("alice", "bob")
    sim.run_until(lambda: session.state is State.ESTABLISHED, timeout=30)
    a = alice.session(bob)
    assert a is not None
    sim.run_until(lambda: a.inbound.available > 0, timeout=10)
    assert a.try_receive() == b"while alice is away"


def test_without_the_mark_the_peer_is_retried_as_before() -> None:
    sim = Simulation("dialable", report_connectivity=True)
    alice = sim.add_node("alice", config=CONFIG)
    bob = sim.add_node("bob", config=CONFIG)
    alice.manager.establish(bob.did)
    sim.run_until(
        lambda: (s := bob.session(alice)) is not None and s.state is State.ESTABLISHED,
        timeout=10,
    )
    session = bob.session(alice)
    assert session is not None
    sim.network.block_path("quic")
    sim.run_until(lambda: session.path == "tcp", timeout=10)  # the usual fallback
