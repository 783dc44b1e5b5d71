"""Multipath (core/paths/multipath.py): a session's validated routes used by
FAILOVER, LOAD_BALANCE and AGGREGATE, over the seeded simulation.

Each strategy streams thousands of messages both ways while a route dies
mid-stream: nothing is lost, nothing is delivered twice, order holds, and
AGGREGATE's duplicate packets are dropped by the replay window without
harming the session.
"""

from __future__ import annotations

from collections import Counter

import pytest
from path_helpers import extra as _extra
from path_helpers import session_of as _session
from path_helpers import validation as _v

from l2session.core.config import SessionConfig
from l2session.core.events import PacketRejected, PathValidated, StateChanged
from l2session.core.link.session import Session
from l2session.core.paths.multipath import MultipathStrategy
from l2session.core.states import State
from l2session.errors import ConfigError
from l2session.testing.network import LinkProfile
from l2session.testing.recorder import Sent, record_wire
from l2session.testing.simulation import SimNode, Simulation
from l2session.wire.packets import PKT_DATA

MESSAGES = 2_000


def _multipath_pair(
    seed: str, strategy: MultipathStrategy
) -> tuple[Simulation, SimNode, SimNode, Session, Session]:
    """Alice and Bob established over QUIC, each with μTCP validated as a
    second route (TCP slower, so load-balanced packets arrive reordered)."""
    sim = Simulation(seed, report_connectivity=True)
    sim.network.set_profile(LinkProfile(latency=0.015), path="tcp")
    config = SessionConfig(multipath=strategy)
    alice = sim.add_node("alice", config=config)
    bob = sim.add_node("bob", config=config)
    alice.manager.establish(bob.did)
    sim.run_until(
        lambda: (
            (s := bob.session(alice)) is not None
            and s.state is State.ESTABLISHED
            and _session(alice, bob).state is State.ESTABLISHED
        ),
        timeout=30,
    )
    a, b = _session(alice, bob), _session(bob, alice)
    alice.manager.add_route(bob.did, "bob", "tcp")
    bob.manager.add_route(alice.did, "alice", "tcp")
    sim.run_until(lambda: bool(_extra(a) and _extra(b)), timeout=5)
    assert _extra(a) == [("bob", "tcp")]
    assert _extra(b) == [("alice", "tcp")]
    assert PathValidated(bob.did, "bob", "tcp") in alice.events
    return sim, alice, bob, a, b


def _stream(
    sim: Simulation, a: Session, b: Session, *, kill: object, at: int = MESSAGES // 2
) -> tuple[list[bytes], list[bytes]]:
    """Stream MESSAGES each way in bursts; call ``kill()`` after ``at``."""
    got_a: list[bytes] = []
    got_b: list[bytes] = []
    for i in range(MESSAGES):
        a.send(b"a%05d" % i)
        b.send(b"b%05d" % i)
        if i % 40 == 39:
            sim.run_for(0.004)
            got_b.extend(b.receive_many())
            got_a.extend(a.receive_many())
        if i == at:
            assert callable(kill)
            kill()

    def done() -> bool:
        got_b.extend(b.receive_many())
        got_a.extend(a.receive_many())
        return len(got_a) >= MESSAGES and len(got_b) >= MESSAGES and not a.queued and not b.queued

    sim.run_until(done, timeout=60)
    sim.run_for(2)
    got_b.extend(b.receive_many())
    got_a.extend(a.receive_many())
    return got_a, got_b


def _data_paths(wire: list[Sent], source: str, since: float, until: float) -> Counter[str]:
    return Counter(
        s.path
        for s in wire
        if s.source == source and since <= s.at < until and s.data[1] == PKT_DATA
    )


@pytest.mark.parametrize("strategy", list(MultipathStrategy))
def test_a_route_dies_mid_stream_and_nothing_is_lost_or_doubled(
    strategy: MultipathStrategy,
) -> None:
    sim, alice, bob, a, b = _multipath_pair(f"multipath-{strategy}", strategy)
    keys = (a.session_id, b.session_id, a.key_epoch, b.key_epoch)
    for node in (alice, bob):
        node.events.clear()
    wire = record_wire(sim)
    start = sim.now
    killed: list[float] = []

    def kill() -> None:
        killed.append(sim.now)
        sim.network.block_path("quic", drop_in_flight=True)

    got_a, got_b = _stream(sim, a, b, kill=kill)
    assert got_b == [b"a%05d" % i for i in range(MESSAGES)]
    assert got_a == [b"b%05d" % i for i in range(MESSAGES)]

    before = _data_paths(wire, "alice", start, killed[0])
    after = _data_paths(wire, "alice", killed[0] + 0.001, sim.now)
    if strategy is MultipathStrategy.FAILOVER:
        assert set(before) == {"quic"}
    else:
        assert set(before) == {"quic", "tcp"}
        if strategy is MultipathStrategy.AGGREGATE:
            assert before["quic"] == before["tcp"]  # every packet on both
        else:
            assert abs(before["quic"] - before["tcp"]) <= 2  # round-robin
    assert set(after) == {"tcp"}
    # The primary moved off the dead route; keys did not change.
    assert (a.path, b.path) == ("tcp", "tcp")
    assert (a.session_id, b.session_id, a.key_epoch, b.key_epoch) == keys
    for node, session in ((alice, a), (bob, b)):
        assert session.state is State.ESTABLISHED
        assert not [e for e in node.events if isinstance(e, StateChanged)]
        # Only duplicates were refused (AGGREGATE's copies): no attack was
        # seen, nobody was quarantined, the session counted nothing.
        refused = {e.reason for e in node.events if isinstance(e, PacketRejected)}
        assert refused <= {"ReplayDetected"}
        assert session.rejected == 0
        assert not node.manager._quarantine
    if strategy is MultipathStrategy.AGGREGATE:
        assert bob.manager.rejections["ReplayDetected"] > 0
    else:
        assert not bob.manager.rejections


def test_load_balance_over_two_addresses_survives_losing_one() -> None:
    sim = Simulation("two-addresses", report_connectivity=True)
    config = SessionConfig(multipath=MultipathStrategy.LOAD_BALANCE)
    alice = sim.add_node("alice", config=config)
    bob = sim.add_node("bob", config=config)
    sim.bind("bob", "bob-2")  # bob's second interface
    alice.manager.establish(bob.did)
    sim.run_until(lambda: _session(alice, bob).state is State.ESTABLISHED, timeout=30)
    sim.run_until(lambda: bob.session(alice) is not None, timeout=5)
    a, b = _session(alice, bob), _session(bob, alice)
    alice.manager.add_route(bob.did, "bob-2", "quic")
    sim.run_until(lambda: bool(_extra(a)), timeout=5)
    wire = record_wire(sim)
    killed: list[float] = []

    def kill() -> None:
        killed.append(sim.now)
        sim.unbind("bob-2")  # the interface goes away with what is in flight to it

    got_a, got_b = _stream(sim, a, b, kill=kill)
    assert got_b == [b"a%05d" % i for i in range(MESSAGES)]
    assert got_a == [b"b%05d" % i for i in range(MESSAGES)]
    before = Counter(s.destination for s in wire if s.source == "alice" and s.at < killed[0])
    assert before["bob"] > 0
    assert before["bob-2"] > 0
    late = [s for s in wire if s.destination == "bob-2" and s.at > killed[0] + 0.001]
    assert not late
    assert a.address == "bob"
    assert a.state is State.ESTABLISHED


def test_a_restored_route_is_used_again_without_a_new_challenge() -> None:
    sim, alice, _bob, a, b = _multipath_pair("restore", MultipathStrategy.LOAD_BALANCE)
    validated = _v(a).validated
    sim.network.block_path("tcp")
    sim.run_for(0.1)
    assert alice.manager.route_down("bob", "tcp")
    wire = record_wire(sim)
    for i in range(100):
        a.send(b"%d" % i)
    sim.run_for(0.5)
    assert {s.path for s in wire if s.source == "alice"} == {"quic"}
    sim.network.unblock_path("tcp")
    sim.run_for(0.1)
    mark = sim.now
    for i in range(100):
        a.send(b"%d" % i)
    sim.run_for(0.5)
    assert {s.path for s in wire if s.source == "alice" and s.at >= mark} == {"quic", "tcp"}
    assert _v(a).validated == validated
    assert len(b.receive_many(1000)) == 200


def test_routes_offered_before_establishment_are_validated_after() -> None:
    sim = Simulation("early-route")
    alice = sim.add_node("alice")
    bob = sim.add_node("bob")
    a = alice.manager.establish(bob.did)
    alice.manager.add_route(bob.did, "bob", "tcp")
    assert _v(a).pending == [("bob", "tcp")]
    sim.run_until(lambda: bool(_extra(a)), timeout=10)
    assert _extra(a) == [("bob", "tcp")]
    assert a.path == "quic"  # FAILOVER: the primary stays


def test_multipath_config_is_validated() -> None:
    assert SessionConfig().multipath is MultipathStrategy.FAILOVER
    for strategy in MultipathStrategy:
        assert SessionConfig(multipath=strategy).multipath is strategy
    with pytest.raises(ConfigError, match=r"SessionConfig\.multipath"):
        SessionConfig(multipath="load_balance")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"SessionConfig\.multipath"):
        SessionConfig(multipath=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", [MultipathStrategy.LOAD_BALANCE, MultipathStrategy.AGGREGATE])
def test_a_lossy_reordering_network_keeps_exactly_once_in_order(
    strategy: MultipathStrategy,
) -> None:
    sim, _alice, _bob, a, b = _multipath_pair(f"lossy-{strategy}", strategy)
    rough = LinkProfile(latency=0.005, jitter=0.01, loss=0.05, duplicate=0.05, reorder=0.1)
    sim.network.set_profile(rough)
    sim.network.set_profile(rough, path="tcp")

    def kill() -> None:
        sim.network.block_path("tcp", drop_in_flight=True)

    got_a, got_b = _stream(sim, a, b, kill=kill)
    assert got_b == [b"a%05d" % i for i in range(MESSAGES)]
    assert got_a == [b"b%05d" % i for i in range(MESSAGES)]
    assert (a.path, b.path) == ("quic", "quic")
    for session in (a, b):
        assert session.state is State.ESTABLISHED
        assert session.rejected == 0
