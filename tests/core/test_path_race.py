"""Happy eyeballs (core/paths/race.py) over the seeded simulation, on virtual time.

An establishment starts on QUIC; when QUIC has not progressed within
``path_race_delay`` the same handshake goes on μTCP too, and the first path
with an authenticated answer wins.  A working QUIC path is never raced, a
forged answer never picks a path, and the session returns to QUIC when it
comes back.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from l2session.core.config import RESEND_INTERVAL, SessionConfig
from l2session.core.link.session import Session
from l2session.core.states import State
from l2session.errors import ConfigError
from l2session.testing.network import LinkProfile
from l2session.testing.recorder import record_wire
from l2session.testing.simulation import SimNode, Simulation, both_established
from l2session.wire.packets import PKT_DATA, HandshakePacket, encode_packet

#: The default race delay (the tests run on the default config).
RACE = 0.25


def _pair(seed: str) -> tuple[Simulation, SimNode, SimNode]:
    sim = Simulation(seed)
    return sim, sim.add_node("alice"), sim.add_node("bob")


def _session(node: SimNode, peer: SimNode) -> Session:
    session = node.session(peer)
    assert session is not None
    return session


def test_a_peer_whose_udp_is_dropped_is_reached_over_tcp_within_the_race_delay() -> None:
    # UDP silently dropped: no transport has declared QUIC down (that takes
    # its connect timeout), so only the race can reach the peer in time.
    sim, alice, bob = _pair("race-udp-dropped")
    sim.network.block_path("quic")
    wire = record_wire(sim)
    alice.manager.establish(bob.did)
    took = sim.run_until(lambda: both_established(alice, bob), timeout=10)
    delay = RACE
    assert took < delay + 0.1  # virtual time: the race delay plus round trips
    assert _session(alice, bob).path == "tcp"
    assert _session(bob, alice).path == "tcp"
    first_tcp = min(s.at for s in wire if s.path == "tcp")
    assert first_tcp - wire[0].at == pytest.approx(delay)
    # The race is over: data goes on μTCP only, and μTCP alone carries it.
    session = _session(alice, bob)
    assert session.race is None
    for i in range(50):
        session.send(b"m%d" % i)
    sim.run_until(lambda: _session(bob, alice).inbound.available >= 50, timeout=10)
    assert [_session(bob, alice).try_receive() for _ in range(50)] == [
        b"m%d" % i for i in range(50)
    ]


def test_a_working_quic_path_is_never_raced() -> None:
    sim, alice, bob = _pair("race-quic-works")
    wire = record_wire(sim)
    alice.manager.establish(bob.did)
    took = sim.run_until(lambda: both_established(alice, bob), timeout=10)
    assert took < RACE
    assert {s.path for s in wire} == {"quic"}
    assert _session(alice, bob).path == "quic"
    sim.run_for(5)
    assert {s.path for s in wire} == {"quic"}


def test_a_quic_path_that_progressed_is_not_raced() -> None:
    # QUIC is slow (300 ms one way) but the runtime says its handshake has
    # heard from the peer: RFC 8305 starts the next attempt only when the
    # first made no progress.
    sim, alice, bob = _pair("race-quic-slow")
    sim.network.set_profile(LinkProfile(latency=0.3), path="quic")
    asked: list[tuple[str, str]] = []

    def progress(address: str, path: str) -> bool:
        asked.append((address, path))
        return path == "quic"

    alice.manager.path_progress = progress
    wire = record_wire(sim)
    alice.manager.establish(bob.did)
    sim.run_until(lambda: both_established(alice, bob), timeout=10)
    assert {s.path for s in wire} == {"quic"}
    assert ("bob", "quic") in asked


def test_when_both_paths_work_the_first_authenticated_answer_wins() -> None:
    # QUIC answers, but later than μTCP: the race picks μTCP; both sides
    # agree, and the losing path carries nothing more.
    sim, alice, bob = _pair("race-tcp-faster")
    sim.network.set_profile(LinkProfile(latency=0.4), path="quic")
    sim.network.set_profile(LinkProfile(latency=0.01), path="tcp")
    wire = record_wire(sim)
    alice.manager.establish(bob.did)
    sim.run_until(lambda: both_established(alice, bob), timeout=10)
    assert _session(alice, bob).path == "tcp"
    sim.run_until(lambda: _session(bob, alice).path == "tcp", timeout=5)
    settled = sim.now
    session = _session(alice, bob)
    for i in range(20):
        session.send(b"%d" % i)
    sim.run_until(lambda: _session(bob, alice).inbound.available >= 20, timeout=10)
    late_quic_data = [
        s for s in wire if s.path == "quic" and s.at > settled + 1 and s.data[0] == PKT_DATA
    ]
    assert not late_quic_data


def test_a_forged_answer_on_the_raced_path_does_not_pick_it() -> None:
    sim, alice, bob = _pair("race-forged")
    sim.network.block_path("quic")
    sim.network.partition("alice", "bob")  # nothing real gets through
    alice.manager.establish(bob.did)
    sim.run_for(0.5)
    session = _session(alice, bob)
    race = session.race
    assert race is not None
    assert race.paths == ["quic", "tcp"]  # widened after the delay
    handshake = session.handshake
    session_id = getattr(handshake, "session_id", None)
    if session_id is None:  # still fetching the bundle: forge a RESPONSE anyway
        session_id = bytes(16)
    forged = encode_packet(HandshakePacket(session_id, bytes([1, 2]) + bytes(range(64))))
    before = dict(alice.manager.rejections)
    alice.manager.receive_datagram(forged, "bob", "tcp")
    assert alice.manager.rejections != before  # refused and counted
    assert session.path == "quic"
    assert session.race is race
    assert session.state is State.HANDSHAKE_INITIATED


def test_the_session_returns_to_quic_when_udp_passes_again() -> None:
    sim, alice, bob = _pair("race-return")
    sim.network.block_path("quic")
    alice.manager.establish(bob.did)
    sim.run_until(lambda: both_established(alice, bob), timeout=10)
    assert _session(alice, bob).path == "tcp"
    # The runtime declares QUIC down (its connect timed out) and its probe
    # succeeds once UDP passes again.
    sim.report_connectivity = True
    sim.run_for(1)
    assert _session(alice, bob).path == "tcp"
    sim.network.unblock_path("quic")
    sim.run_until(lambda: _session(alice, bob).path == "quic", timeout=10)
    session = _session(alice, bob)
    session.send(b"after the return")
    sim.run_until(lambda: _session(bob, alice).inbound.available > 0, timeout=10)
    assert _session(bob, alice).try_receive() == b"after the return"


def test_a_resumption_races_too() -> None:
    sim, alice, bob = _pair("race-resume")
    alice.manager.establish(bob.did)
    sim.run_until(lambda: both_established(alice, bob), timeout=10)
    assert alice.manager.stored  # a resumption ticket
    sim.network.block_path("quic")
    _session(alice, bob).close("test")
    _session(bob, alice).close("test")
    sim.run_for(1)
    alice.manager.establish(bob.did)
    took = sim.run_until(lambda: both_established(alice, bob), timeout=10)
    assert took < RACE + 0.1
    session = _session(alice, bob)
    assert session.path == "tcp"
    assert not any(t.reason == "PQXDH complete" for t in session.history if t.at >= sim.now - took)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"path_race_delay": -0.1}, "path_race_delay"),
        ({"path_race_delay": float("nan")}, "path_race_delay"),
        ({"handshake_timeout": 1.0}, "handshake_timeout"),
        ({"path_race_delay": 4.5}, "handshake_timeout"),
    ],
)
def test_no_timeout_is_shorter_than_the_race_it_depends_on(
    changes: dict[str, float], field: str
) -> None:
    base = SessionConfig()
    with pytest.raises(ConfigError, match=field):
        replace(
            base,
            path_race_delay=changes.get("path_race_delay", base.path_race_delay),
            handshake_timeout=changes.get("handshake_timeout", base.handshake_timeout),
        )


def test_hole_punching_is_a_validated_switch() -> None:
    assert SessionConfig().hole_punching is True
    with pytest.raises(ConfigError, match="hole_punching"):
        SessionConfig(hole_punching="yes")  # type: ignore[arg-type]


def test_the_default_race_delay_is_rfc_8305s_and_deep_space_has_none() -> None:
    assert SessionConfig().path_race_delay == RACE
    assert SessionConfig.deep_space(1200.0).path_race_delay is None


def test_a_handshake_timeout_just_above_the_race_is_accepted() -> None:
    config = SessionConfig(path_race_delay=0.5, handshake_timeout=0.5 + RESEND_INTERVAL + 0.01)
    assert config.path_race_delay == 0.5
    assert SessionConfig(path_race_delay=0).path_race_delay == 0
